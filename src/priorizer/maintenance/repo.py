"""Maintenance runs: claimed by slot, finished with their outcome, read for status and health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, select, update
from sqlalchemy.orm import Session

from priorizer.db import dialect_insert
from priorizer.maintenance.models import INTERRUPTED, OK, RUNNING, MaintenanceRun

runs = cast(Table, MaintenanceRun.__table__)


def claim(session: Session, *, slot: int | None, runner: str, now: datetime) -> int | None:
    """Start a run: its id, or None when another process already claimed this slot."""
    statement = (
        dialect_insert(session, runs)
        .values(slot=slot, runner=runner, started_at=now, outcome=RUNNING)
        .on_conflict_do_nothing(index_elements=[runs.c.slot])
        .returning(runs.c.id)
    )
    return session.execute(statement).scalar_one_or_none()


def close_abandoned(session: Session, *, now: datetime) -> int:
    """Runs still marked running: their process stopped before finishing them (the caller
    holds the runner lock, so no live process is running one). Marked interrupted."""
    statement = (
        update(runs)
        .where(runs.c.outcome == RUNNING)
        .values(outcome=INTERRUPTED, error="the process running it stopped before it finished")
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def finish(session: Session, *, run_id: int, **values: Any) -> None:
    session.execute(update(runs).where(runs.c.id == run_id).values(**values))


def latest(session: Session, *, outcome: str | None = None) -> MaintenanceRun | None:
    """The newest run that is over (or with that outcome)."""
    query = select(MaintenanceRun).order_by(MaintenanceRun.id.desc()).limit(1)
    query = query.where(
        MaintenanceRun.outcome == outcome if outcome else MaintenanceRun.outcome != RUNNING
    )
    return session.execute(query).scalar_one_or_none()


def latest_ok(session: Session) -> MaintenanceRun | None:
    return latest(session, outcome=OK)


def recent(session: Session, *, limit: int) -> list[MaintenanceRun]:
    query = select(MaintenanceRun).order_by(MaintenanceRun.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def prune(session: Session, *, before: datetime) -> int:
    statement = delete(runs).where(runs.c.started_at < before)
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0
