"""Harvest run queries."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from priorizer.harvest.models import INTERRUPTED, OK, RUNNING, HarvestRun


def unfinished(session: Session, *, source: str) -> HarvestRun | None:
    """The source's latest run if it did not finish: the next run continues it."""
    latest = (
        session.execute(
            select(HarvestRun).where(HarvestRun.source == source).order_by(HarvestRun.id.desc())
        )
        .scalars()
        .first()
    )
    return latest if latest is not None and latest.state in (RUNNING, INTERRUPTED) else None


def last_ok(session: Session, *, source: str) -> HarvestRun | None:
    query = (
        select(HarvestRun)
        .where(HarvestRun.source == source, HarvestRun.state == OK)
        .order_by(HarvestRun.id.desc())
    )
    return session.execute(query).scalars().first()


def get(session: Session, *, run_id: int, for_update: bool = False) -> HarvestRun | None:
    return session.get(HarvestRun, run_id, with_for_update=for_update or None)


def latest(session: Session) -> HarvestRun | None:
    return session.execute(
        select(HarvestRun).order_by(HarvestRun.id.desc()).limit(1)
    ).scalar_one_or_none()


def recent(session: Session, *, limit: int, source: str | None = None) -> list[HarvestRun]:
    query = select(HarvestRun).order_by(HarvestRun.id.desc()).limit(limit)
    if source is not None:
        query = query.where(HarvestRun.source == source)
    return list(session.execute(query).scalars())
