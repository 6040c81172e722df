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
from priorizer.simulate.churn import ChurnWatch
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

    def maintain(self, *, now: float) -> dict[str, Any] | None:
        """Run a maintenance cycle: what its steps did (a server over HTTP runs its own: None)."""


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
    return Campaign(items, fleet, driver, target=target).play(
        step=scenario.round_minutes * 60, end=scenario.max_days * 86_400
    )


class Campaign:
    """One campaign's state as simulated time goes by."""

    def __init__(self, items: Sequence[Item], fleet: Fleet, driver: Driver, *, target: int) -> None:
        self.items, self.fleet, self.driver, self.target = items, fleet, driver, target
        self.counts: Counter[str] = Counter()
        self.series: list[dict[str, Any]] = []
        self.coverable = measures.coverable_top(items, fleet.capacities_mb)
        self.covered_at: float | None = None
        top = frozenset(i.id for i in items if i.priority >= measures.TOP_PRIORITY)
        self.churn = ChurnWatch(top, target)

    def play(self, *, step: float, end: float) -> Outcome:
        """Round after round while nodes ask; else on to the next change; until none is left
        or `end` (simulated seconds) is passed."""
        seen_version, now = -1, 0.0
        while True:
            self._changes(now)
            self._ask(now)
            if self.fleet.version != seen_version:
                seen_version = self.fleet.version
                self._record(now)
            following = now + step if self.fleet.busy else self.fleet.next_change(now)
            if following is None or following > end:
                return self._outcome(now)
            now = following

    def _changes(self, now: float) -> None:
        """What happens at `now` before nodes ask: nodes vanish or come back, a maintenance
        cycle runs if one has work, downloads due are reported."""
        fleet, driver, counts = self.fleet, self.driver, self.counts
        events = fleet.events(now)
        for kind, node in events:
            counts[f"nodes_{kind}"] += 1
            if kind == "returned" and node.last_contact is not None:
                self._hello(node.id, now)
        vanished = [node for kind, node in events if kind == "vanished"]
        if vanished:
            self.churn.vanished(vanished, fleet.copies, now=now)
        if fleet.cycle_due(now):
            for node in fleet.silent_since(now - HEARTBEAT_SECONDS):
                self._hello(node.id, now)
                counts["heartbeats"] += 1
            steps = driver.maintain(now=now) or {}
            counts["maintenance_cycles"] += 1
            if steps.get("lost_nodes"):
                counts["nodes_marked_lost"] += steps["lost_nodes"]
                self.churn.marked_lost(now=now)
            fleet.wake()
        for node, finished in list(fleet.due(now)):
            driver.settle(node_id=node.id, downloads=finished, now=now)
            fleet.settled(node, finished, now=now)
            counts["failures"] += sum(d.fails for d in finished)
            counts["completions"] += sum(not d.fails for d in finished)

    def _hello(self, node_id: str, now: float) -> None:
        self.driver.hello(node_id=node_id, now=now)
        self.fleet.contacted(node_id, now)

    def _ask(self, now: float) -> None:
        for node in self.fleet.askers():
            grants = self.driver.allocate(
                node_id=node.id, free_space_gb=node.free_space_gb, now=now
            )
            self.fleet.granted(node, grants, now=now)
            self.counts["requests"] += 1
            self.counts["empty_answers"] += not grants
            self.counts["leases"] += len(grants)

    def _record(self, now: float) -> None:
        """A point of the time series (the live copies changed)."""
        items, copies = self.items, self.fleet.copies
        self.series.append(
            {
                "hours": now / 3600,
                "coverage": measures.coverage(items, copies),
                "top_redundancy": measures.top_redundancy(items, copies),
                "top_at_target": measures.share_held(
                    items, copies, min_priority=measures.TOP_PRIORITY, min_copies=self.target
                ),
                "top_short": self.churn.observe(copies, now=now),
                "live_nodes": sum(not node.gone for node in self.fleet.nodes),
                "copies": sum(copies.values()),
            }
        )
        if self.covered_at is None and measures.all_held(self.coverable, copies):
            self.covered_at = now

    def _outcome(self, now: float) -> Outcome:
        items, copies, target = self.items, self.fleet.copies, self.target
        capacity = sum(self.fleet.capacities_mb)
        return Outcome(
            summary=measures.summary(items, copies, capacity_mb=capacity, target=target),
            per_priority=measures.per_priority(items, copies, target=target),
            copies_histogram=measures.copies_histogram(items, copies),
            counts=dict(self.counts),
            time_to_cover_top_hours=None if self.covered_at is None else self.covered_at / 3600,
            simulated_hours=now / 3600,
            series=self.series,
            churn=self.churn.summary(self.series, self.counts),
        )
