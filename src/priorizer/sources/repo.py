"""Watched source queries; the race-prone ones (taking a due source) kept together here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session

from priorizer.catalog.models import Dataset
from priorizer.sources.models import WatchedSource


def get(session: Session, *, source_id: int) -> WatchedSource | None:
    return session.get(WatchedSource, source_id)


def by_key(session: Session, *, key: str) -> WatchedSource | None:
    return session.execute(
        select(WatchedSource).where(WatchedSource.key == key)
    ).scalar_one_or_none()


def by_url(session: Session, *, url: str) -> list[WatchedSource]:
    return list(session.execute(select(WatchedSource).where(WatchedSource.url == url)).scalars())


def list_all(session: Session) -> Sequence[WatchedSource]:
    return session.execute(select(WatchedSource).order_by(WatchedSource.id)).scalars().all()


def dataset_counts(session: Session, *, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per source key: its datasets in the catalog, and those of them removed upstream."""
    if not keys:
        return {}
    removed = func.count(Dataset.removed_at)
    rows = session.execute(
        select(Dataset.source, func.count(), removed)
        .where(Dataset.source.in_(list(keys)))
        .group_by(Dataset.source)
    ).all()
    return {str(source): (total, gone) for source, total, gone in rows}


def claim_due(
    session: Session, *, now: datetime, runner: str, lease_seconds: float
) -> WatchedSource | None:
    """Take the source most overdue, if any: one conditional UPDATE that moves its next run a
    period on, so of several processes exactly one takes each due run (zero rows: another
    process took it first; the caller may look again)."""
    due = session.execute(
        select(WatchedSource.id, WatchedSource.next_run_at, WatchedSource.every_seconds)
        .where(
            WatchedSource.next_run_at <= now,
            or_(WatchedSource.lease_until.is_(None), WatchedSource.lease_until < now),
        )
        .order_by(WatchedSource.next_run_at, WatchedSource.id)
        .limit(1)
    ).first()
    if due is None:
        return None
    taken = _changed(
        session,
        update(WatchedSource)
        .where(WatchedSource.id == due.id, WatchedSource.next_run_at == due.next_run_at)
        .values(
            next_run_at=now + timedelta(seconds=due.every_seconds),
            leased_by=runner,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
        .execution_options(synchronize_session=False),
    )
    if taken != 1:
        return None
    return session.get(WatchedSource, due.id, populate_existing=True)


def release(session: Session, *, source_id: int, runner: str, values: dict[str, Any]) -> bool:
    """Record how the run went and let the source go, if this runner still holds it."""
    done = _changed(
        session,
        update(WatchedSource)
        .where(WatchedSource.id == source_id, WatchedSource.leased_by == runner)
        .values(leased_by=None, lease_until=None, **values)
        .execution_options(synchronize_session=False),
    )
    return done == 1


def renew(session: Session, *, source_id: int, runner: str, until: datetime) -> None:
    session.execute(
        update(WatchedSource)
        .where(WatchedSource.id == source_id, WatchedSource.leased_by == runner)
        .values(lease_until=until)
        .execution_options(synchronize_session=False)
    )


def _changed(session: Session, statement: Any) -> int:
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0
