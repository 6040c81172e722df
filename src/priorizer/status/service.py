"""Start-up duties and the service's view of itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.allocation import service as allocation_service
from priorizer.catalog import discovered
from priorizer.catalog import service as catalog_service
from priorizer.config import Settings
from priorizer.harvest import service as harvest_service
from priorizer.maintenance import repo as maintenance_repo
from priorizer.maintenance import service as maintenance_service
from priorizer.maintenance.models import FAILED
from priorizer.node import service as node_service
from priorizer.sources import service as sources_service


def health(
    *,
    database_problem: str | None,
    maintenance_problem: str | None,
    scheduler_expected: bool,
    scheduler_running: bool,
) -> tuple[dict[str, bool], str | None]:
    """GET /health's checks and the reasons for any that failed: the database answers, this
    process's scheduler runs (when it should), and the last maintenance cycle (run by any
    process) succeeded on time (`maintenance_problem`; not judged when the database does not
    answer)."""
    checks = {"database": True, "scheduler": True, "maintenance": True}
    reasons = []
    if database_problem is not None:
        checks["database"] = checks["maintenance"] = False
        reasons.append(database_problem)
    elif maintenance_problem is not None:
        checks["maintenance"] = False
        reasons.append(maintenance_problem)
    if scheduler_expected and not scheduler_running:
        checks["scheduler"] = False
        reasons.append("maintenance scheduler is not running")
    return checks, "; ".join(reasons) or None


def maintenance_problem(
    session: Session, *, now: datetime, interval_seconds: float, started_at: datetime
) -> str | None:
    """Why maintenance is unhealthy, or None: the last cycle failed, or none succeeded on time
    (within three intervals and ten seconds of the last success, or of this process's start)."""
    last = maintenance_repo.latest(session)
    if last is not None and last.outcome == FAILED:
        return f"the last maintenance cycle failed at {last.finished_at:%Y-%m-%d %H:%M:%S} UTC"
    ok = maintenance_repo.latest_ok(session)
    since = started_at if ok is None or ok.finished_at is None else max(ok.finished_at, started_at)
    if (now - since).total_seconds() > 3 * interval_seconds + 10:
        when = "never" if ok is None else f"at {ok.finished_at:%Y-%m-%d %H:%M:%S} UTC"
        return f"maintenance is overdue: the last successful cycle ran {when}"
    return None


def status_from_database(session: Session, *, settings: Settings, now: datetime) -> dict[str, Any]:
    """What GET /status says, read straight from the database (for `priorizer status` where no
    server answers): the scheduler is not judged, only whether maintenance ran on time."""
    figures = status(session, replication_target=settings.replication_target)
    problem = maintenance_problem(
        session,
        now=now,
        interval_seconds=settings.auto_update_interval_seconds,
        started_at=maintenance_service.SLOT_ORIGIN,
    )
    return {
        **figures,
        "next_auto_update": None,
        "system_health": "healthy" if problem is None else "degraded",
        "health_reason": problem,
    }


def status(session: Session, *, replication_target: int) -> dict[str, Any]:
    """The figures of GET /status."""
    stats = catalog_service.catalog_stats(session, replication_target=replication_target)
    last = maintenance_repo.latest(session)
    ok = maintenance_repo.latest_ok(session)
    return {
        **stats,
        "ckan_datasets": stats["assets"],  # the seed's name for the catalog size
        "replication_target": replication_target,
        "active_allocations": allocation_service.count_open(session),
        "nodes": node_service.count_nodes(session),
        "lost_nodes": node_service.count_lost(session),
        "last_maintenance": maintenance_service.run_view(last),
        "last_snapshot": ok.stats if ok is not None else None,
        "harvest": harvest_service.latest_run(session),
        "sources": sources_service.list_sources(session),
        "removed_without_copy": catalog_service.removed_without_copy(session, limit=0)[1],
        "discovery": discovered.figures(session),
    }


def figures(session: Session, *, replication_target: int) -> dict[str, Any]:
    """What the dashboard and the metrics show: the status figures, read now, and the rescue's
    progress per base priority and state (`progress`), as of `progress_at`. That is the last
    cycle's snapshot, since it costs a sorting pass over the catalog; before any cycle, it is
    read now."""
    figures = status(session, replication_target=replication_target)
    taken = figures["last_snapshot"] or {}
    if "progress" in taken and taken.get("replication_target") == replication_target:
        progress, progress_at = taken["progress"], datetime.fromisoformat(taken["at"])
    else:
        progress = catalog_service.catalog_progress(session, replication_target=replication_target)
        progress_at = None
    return {**figures, "progress": progress, "progress_at": progress_at}
