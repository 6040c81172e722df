"""A campaign in simulated time: the fleet asks, downloads, reports, vanishes and comes back,
through a driver (in-process or over HTTP); the measures are taken as it goes.

Time moves a round at a time while nodes ask (`round_minutes`); when none has anything to ask,
it jumps to the next moment something happens (a download due, a node vanishing or back, a
maintenance cycle with work), and the campaign ends when nothing ever will, or at `max_days`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from priorizer.simulate import measures
from priorizer.simulate.fleet import Download, Fleet, Grant
from priorizer.simulate.measures import Item
from priorizer.simulate.scenario import Scenario

# Before a maintenance cycle, live nodes silent this long call the server (as a node renewing
# its leases would): otherwise the cycle would take them for lost.
HEARTBEAT_SECONDS = 86_400.0


class Driver(Protocol):
    """Where the fleet's requests go. Times are simulated seconds since the campaign began."""

    def allocate(self, *, node_id: str, free_space_gb: float, now: float) -> list[Grant]: ...

    def settle(self, *, node_id: str, downloads: Sequence[Download], now: float) -> None:
        """Report each download done, or failed, in order."""

    def hello(self, *, node_id: str, now: float) -> None:
        """The node calls in without asking for work (renews its leases)."""

    def maintain(self, *, now: float) -> None:
        """Run a maintenance cycle (a server over HTTP runs its own: nothing)."""


@dataclass(slots=True)
class Outcome:
    summary: dict[str, Any]
    per_priority: list[measures.PriorityRow]
    copies_histogram: dict[int, int]
    counts: dict[str, int]
    time_to_cover_top_hours: float | None
    simulated_hours: float
    series: list[dict[str, Any]] = field(default_factory=list)
    churn: dict[str, Any] | None = None


def run(
    scenario: Scenario,
    items: Sequence[Item],
    driver: Driver,
    *,
    target: int,
    lease_seconds: float,
    lost_seconds: float,
) -> Outcome:
    fleet = Fleet(
        scenario.fleet, seed=scenario.seed, lease_seconds=lease_seconds, lost_seconds=lost_seconds
    )
    capacity = sum(fleet.capacities_mb)
    coverable = measures.coverable_top(items, fleet.capacities_mb)
    step, end = scenario.round_minutes * 60, scenario.max_days * 86_400
    counts: Counter[str] = Counter()
    series: list[dict[str, Any]] = []
    covered_at: float | None = None
    seen_version, now = -1, 0.0
    while True:
        _changes(fleet, driver, counts, now=now)
        for node in fleet.askers():
            grants = driver.allocate(node_id=node.id, free_space_gb=node.free_space_gb, now=now)
            fleet.granted(node, grants, now=now)
            counts["requests"] += 1
            counts["empty_answers"] += not grants
            counts["leases"] += len(grants)
        if fleet.version != seen_version:
            seen_version = fleet.version
            series.append(_point(items, fleet, now=now, target=target))
            if covered_at is None and measures.all_held(coverable, fleet.copies):
                covered_at = now
        following = now + step if fleet.busy else fleet.next_change(now)
        if following is None or following > end:
            break
        now = following
    return Outcome(
        summary=measures.summary(items, fleet.copies, capacity_mb=capacity, target=target),
        per_priority=measures.per_priority(items, fleet.copies, target=target),
        copies_histogram=measures.copies_histogram(items, fleet.copies),
        counts=dict(counts),
        time_to_cover_top_hours=None if covered_at is None else covered_at / 3600,
        simulated_hours=now / 3600,
        series=series,
        churn=churn_summary(series, fleet_events=counts, scenario=scenario),
    )


def _changes(fleet: Fleet, driver: Driver, counts: Counter[str], *, now: float) -> None:
    """What happens at `now` before nodes ask: nodes vanish or come back, a maintenance cycle
    runs if one has work, downloads due are reported."""
    for kind, node in fleet.events(now):
        counts[f"nodes_{kind}"] += 1
        if kind == "returned" and node.last_contact is not None:
            driver.hello(node_id=node.id, now=now)
            node.last_contact = now
    if fleet.cycle_due(now):
        for node in fleet.silent_since(now - HEARTBEAT_SECONDS):
            driver.hello(node_id=node.id, now=now)
            node.last_contact = now
            counts["heartbeats"] += 1
        driver.maintain(now=now)
        counts["maintenance_cycles"] += 1
        fleet.wake()
    for node, finished in list(fleet.due(now)):
        driver.settle(node_id=node.id, downloads=finished, now=now)
        fleet.settled(node, finished, now=now)
        counts["failures"] += sum(d.fails for d in finished)
        counts["completions"] += sum(not d.fails for d in finished)


def _point(items: Sequence[Item], fleet: Fleet, *, now: float, target: int) -> dict[str, Any]:
    copies = fleet.copies
    return {
        "hours": now / 3600,
        "coverage": measures.coverage(items, copies),
        "top_redundancy": measures.top_redundancy(items, copies),
        "top_at_target": measures.share_held(
            items, copies, min_priority=measures.TOP_PRIORITY, min_copies=target
        ),
        "live_nodes": sum(not node.gone for node in fleet.nodes),
        "copies": sum(copies.values()),
    }


def churn_summary(
    series: Sequence[dict[str, Any]], *, fleet_events: Counter[str], scenario: Scenario
) -> dict[str, Any] | None:
    """How top data fared when nodes vanished: the figures just before, at their lowest, at
    the end, and how long after the loss top data was back at the target as before."""
    if not scenario.has_churn or not fleet_events.get("nodes_vanished"):
        return None
    at = scenario.fleet.vanish_at_hours
    before = [p for p in series if p["hours"] < at]
    after = [p for p in series if p["hours"] >= at]
    if not after:
        return None
    baseline = before[-1] if before else series[0]
    key = "top_at_target"
    lowest = min(after, key=lambda p: (p[key] or 0.0, p["hours"]))
    goal = baseline[key] or 0.0
    back = next((p for p in after if p["hours"] >= lowest["hours"] and (p[key] or 0) >= goal), None)
    return {
        "vanished_nodes": fleet_events["nodes_vanished"],
        "returned_nodes": fleet_events.get("nodes_returned", 0),
        "vanished_at_hours": at,
        "before": baseline,
        "lowest": lowest,
        "end": series[-1],
        "recovered_after_hours": None if back is None else back["hours"] - at,
    }
