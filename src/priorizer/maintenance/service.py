"""What the maintenance cycle (`maintenance.jobs`) works with: its policy, its slots, the
statistics snapshot it records, and a run as /status shows it. Documented in
docs/maintenance.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from priorizer.allocation import repo as allocation_repo
from priorizer.catalog import stats as catalog_stats
from priorizer.config import Settings
from priorizer.maintenance.models import MaintenanceRun
from priorizer.node import repo as node_repo
from priorizer.node.standing import CapLimits
from priorizer.queue.policy import QueuePolicy

SLOT_ORIGIN = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class MaintenancePolicy:
    queue: QueuePolicy
    caps: CapLimits
    interval_seconds: float
    node_lost_seconds: float
    priority_jitter: int
    refresh_limit: int
    retention_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings, queue: QueuePolicy) -> MaintenancePolicy:
        return cls(
            queue=queue,
            caps=cap_limits(settings),
            interval_seconds=settings.auto_update_interval_seconds,
            node_lost_seconds=settings.node_lost_seconds,
            priority_jitter=settings.priority_jitter,
            refresh_limit=settings.priority_refresh_limit,
            retention_seconds=settings.snapshot_retention_days * 86_400,
        )


def cap_limits(settings: Settings) -> CapLimits:
    return CapLimits(settings.lease_cap_initial, settings.lease_cap_min, settings.lease_cap_max)


def slot_of(moment: datetime, interval_seconds: float) -> int:
    """The scheduled slot a moment falls in (the same in every process)."""
    return int((moment - SLOT_ORIGIN).total_seconds() // interval_seconds)


def slot_start(slot: int, interval_seconds: float) -> datetime:
    return SLOT_ORIGIN + timedelta(seconds=slot * interval_seconds)


def statistics(
    session: Any, *, policy: MaintenancePolicy, now: datetime, before: dict[str, Any]
) -> dict[str, Any]:
    """Where the rescue stands: catalog, copies, fleet, and lease events since last cycle."""
    target = policy.queue.replication_target
    figures = catalog_stats.summary(session, replication_target=target)
    open_leases, reserved_mb = allocation_repo.open_totals(session)
    active_since = now - timedelta(seconds=policy.node_lost_seconds)
    fleet = node_repo.totals(session, active_since=active_since)
    totals = {
        "opened": allocation_repo.last_allocation_id(session),
        "completed": fleet.pop("completions"),
        "failed": fleet.pop("failures"),
        "expired": fleet.pop("expirations"),
        "released": fleet.pop("releases"),
    }
    earlier = before.get("lease_totals", {})
    free = fleet["free_space_mb"]
    return {
        "at": now.isoformat(),
        "catalog": figures["catalog"],
        "replication_target": target,
        "progress": figures["progress"],
        "priority_distribution": figures["priority_distribution"],
        "copies_distribution": figures["copies_distribution"],
        "states": figures["states"],
        "open_leases": open_leases,
        "reserved_mb": reserved_mb,
        "fleet": fleet,
        "utilisation": reserved_mb / free if free > 0 else None,
        "lease_totals": totals,
        "since_last_cycle": {k: v - earlier.get(k, 0) for k, v in totals.items()}
        if earlier
        else None,
    }


def run_view(run: MaintenanceRun | None) -> dict[str, Any] | None:
    """A run as status shows it."""
    if run is None:
        return None
    return {
        "id": run.id,
        "slot": run.slot,
        "runner": run.runner,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run.duration_seconds,
        "outcome": run.outcome,
        "error": run.error,
        "steps": run.steps,
    }
