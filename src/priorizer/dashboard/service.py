"""What the dashboard shows, read in one session and shaped for the templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from priorizer.allocation import service as allocation_service
from priorizer.catalog import service as catalog_service
from priorizer.dashboard import charts
from priorizer.maintenance import repo as maintenance_repo
from priorizer.node import service as node_service
from priorizer.status import service as status_service

NODES_SHOWN = 50
LEASES_SHOWN = 15
RUNS_SHOWN = 30
TROUBLE_SHOWN = 20
# Lease outcomes per cycle, as the snapshots name them, with the class that colours them.
OUTCOMES = (
    ("completed", "done"),
    ("failed", "failed"),
    ("expired", "expired"),
    ("released", "released"),
)


def overview(session: Session, *, replication_target: int) -> dict[str, Any]:
    """The status figures, the rescue's progress overall and per priority, the assets in
    trouble, the nodes seen last, the newest leases and the latest maintenance cycles."""
    figures = status_service.figures(session, replication_target=replication_target)
    nodes = node_service.recently_seen(session, limit=NODES_SHOWN)
    holdings = allocation_service.node_summaries(session, node_ids=[n.id for n in nodes])
    runs = maintenance_repo.recent(session, limit=RUNS_SHOWN)
    outcomes = outcome_columns(runs)
    return {
        "figures": figures,
        "overall": progress_total(figures["progress"]),
        "by_priority": progress_by_priority(figures["progress"]),
        "trouble": trouble(session),
        "nodes": [{"node": node, **holdings[node.id]} for node in nodes],
        "leases": allocation_service.latest_leases(session, limit=LEASES_SHOWN),
        "runs": runs,
        "charts": {
            "cycles": cycle_columns(runs),
            "outcomes": outcomes,
            "outcome_totals": outcome_totals(outcomes),
        },
    }


def trouble(session: Session) -> dict[str, Any]:
    """The assets of datasets removed upstream that no node holds yet, those nodes failed to
    download, each with its latest failure, and those whose copies disagree, each with the
    checksums reported and by whom."""
    failing, failing_count = catalog_service.failing_assets(session, limit=TROUBLE_SHOWN)
    conflicting = catalog_service.conflicting_assets(session, limit=TROUBLE_SHOWN)
    latest = allocation_service.latest_failures(session, asset_ids=[a.id for a in failing])
    sums = allocation_service.reported_checksums(session, asset_ids=[a.id for a in conflicting])
    removed, removed_count = catalog_service.removed_without_copy(session, limit=TROUBLE_SHOWN)
    return {
        "removed": removed,
        "removed_count": removed_count,
        "failing": [{"asset": a, "latest": latest.get(a.id)} for a in failing],
        "failing_count": failing_count,
        "conflicting": [{"asset": a, "checksums": sums.get(a.id, [])} for a in conflicting],
    }


def progress_total(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The progress rows added up, with stacked bars for assets and for known bytes."""
    keys = (
        "assets",
        "with_copy",
        "at_target",
        "unknown_size",
        "megabytes",
        "megabytes_with_copy",
        "megabytes_at_target",
    )
    total = {key: sum(row[key] for row in rows) for key in keys}
    return total | {
        "asset_bar": _rescue_bar(total["assets"], total["with_copy"], total["at_target"]),
        "byte_bar": _rescue_bar(
            total["megabytes"], total["megabytes_with_copy"], total["megabytes_at_target"]
        ),
    }


def progress_by_priority(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per base priority, highest first (every priority from 10 to 1, empty ones included):
    the totals of `progress_total`, and the column of the priority distribution."""
    per = [
        {"priority": p} | progress_total([row for row in rows if row["priority"] == p])
        for p in range(10, 0, -1)
    ]
    distribution = charts.columns(
        [(str(p["priority"]), [("assets", p["assets"])]) for p in reversed(per)], height=40
    )
    for entry, column in zip(reversed(per), distribution, strict=True):
        entry["column"] = column
    return per


def _rescue_bar(total: float, with_copy: float, at_target: float) -> list[charts.Segment]:
    return charts.stacked_bar(
        [
            ("at target", at_target, "done"),
            ("with a copy", with_copy - at_target, "partial"),
            ("no copy yet", total - with_copy, "none"),
        ],
        total=total,
    )


def cycle_columns(runs: Sequence[Any]) -> charts.Timeline:
    """Cycle durations, oldest first, coloured by outcome, in a slot per cycle shown."""
    when = _time_format(runs)
    return charts.timeline(
        [
            (
                f"{run.started_at:{when}}",
                [(run.outcome or "running", run.duration_seconds or 0.0)],
            )
            for run in reversed(runs)
        ],
        height=30,
        slots=RUNS_SHOWN,
    )


def outcome_columns(runs: Sequence[Any]) -> charts.Timeline:
    """Leases completed, failed, expired and released between cycles, oldest first (from each
    successful cycle's snapshot), on a scale of lease counts."""
    series, when = [], _time_format(runs)
    for run in reversed(runs):
        moved = (run.stats or {}).get("since_last_cycle")
        if moved is not None:
            label = f"{run.started_at:{when}}"
            # Net changes: a late completion takes back an expiration counted before (-1).
            parts = [(css, max(0, moved.get(name, 0))) for name, css in OUTCOMES]
            series.append((label, parts))
    return charts.timeline(series, height=30, slots=RUNS_SHOWN, whole=True)


def _time_format(runs: Sequence[Any]) -> str:
    """Hours and minutes, or seconds too when cycles come more often than once a minute."""
    minutes = [f"{run.started_at:%Y%m%d%H%M}" for run in runs]
    return "%H:%M" if len(set(minutes)) == len(minutes) else "%H:%M:%S"


def outcome_totals(chart: charts.Timeline) -> dict[str, float]:
    """Each outcome's leases over the cycles charted, by the class that colours it."""
    totals = {css: 0.0 for _, css in OUTCOMES}
    for column in chart.columns:
        for css, value, _y, _h in column.parts:
            totals[css] += value
    return totals
