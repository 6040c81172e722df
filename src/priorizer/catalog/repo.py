"""Catalog queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, func, select, update
from sqlalchemy.orm import Session

from priorizer.allocation.policy import QueuePolicy, rank_sql
from priorizer.catalog.models import ASSET_ACTIVE, Asset, Dataset
from priorizer.db import dialect_insert

assets = cast(Table, Asset.__table__)
CHUNK = 500


def existing_ids(session: Session, *, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        found.update(session.execute(select(assets.c.id).where(assets.c.id.in_(chunk))).scalars())
    return found


def upsert(session: Session, *, rows: Sequence[dict[str, Any]], queue: QueuePolicy) -> None:
    """Insert assets, or update them in place by id, keeping their copies and leases."""
    if not rows:
        return
    statement = dialect_insert(session, assets)
    new = statement.excluded
    holders = assets.c.copies + assets.c.leases
    statement = statement.on_conflict_do_update(
        index_elements=[assets.c.id],
        set_={
            "url": new.url,
            "name": new.name,
            "size_mb": new.size_mb,
            "format": new.format,
            "dataset_id": new.dataset_id,
            "base_priority": new.base_priority,
            "priority": new.priority,
            "extra": new.extra,
            "updated_at": new.updated_at,
            "budget_mb": new.budget_mb,
            "rank": rank_sql(new.priority, holders, assets.c.state == ASSET_ACTIVE, queue),
        },
    )
    session.execute(statement, list(rows))


def set_priority(
    session: Session, *, asset_id: str, priority: int, queue: QueuePolicy, now: datetime
) -> bool:
    """Set base and effective priority; False when the asset is unknown or already there."""
    holders = assets.c.copies + assets.c.leases
    statement = (
        update(assets)
        .where(assets.c.id == asset_id, assets.c.base_priority != priority)
        .values(
            base_priority=priority,
            priority=priority,
            updated_at=now,
            rank=rank_sql(priority, holders, assets.c.state == ASSET_ACTIVE, queue),
        )
    )
    return bool(cast(CursorResult[Any], session.execute(statement)).rowcount)


def get(session: Session, *, asset_id: str) -> Asset | None:
    return session.get(Asset, asset_id)


def list_page(
    session: Session,
    *,
    after: str | None,
    limit: int,
    priority: int | None,
    state: str | None,
) -> Sequence[Asset]:
    query = select(Asset).order_by(Asset.id).limit(limit)
    if after is not None:
        query = query.where(Asset.id > after)
    if priority is not None:
        query = query.where(Asset.priority == priority)
    if state is not None:
        query = query.where(Asset.state == state)
    return session.execute(query).scalars().all()


def iterate(session: Session, *, batch: int = 5000) -> Any:
    """Every asset in id order, a batch at a time (exports of any size)."""
    after = ""
    while True:
        rows = (
            session.execute(select(Asset).where(Asset.id > after).order_by(Asset.id).limit(batch))
            .scalars()
            .all()
        )
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        session.expunge_all()


def stats(session: Session, *, replication_target: int) -> dict[str, Any]:
    query = select(
        func.count(),
        func.coalesce(func.sum(assets.c.priority), 0),
        func.coalesce(func.sum(assets.c.copies), 0),
        func.count().filter(assets.c.copies > 0),
        func.count().filter(assets.c.copies >= replication_target),
    )
    total, priority_sum, copies, with_copy, at_target = session.execute(query).one()
    return {
        "assets": total,
        "total_priority_score": int(priority_sum),
        "copies": int(copies),
        "assets_with_a_copy": with_copy,
        "assets_at_target": at_target,
    }


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(assets)).scalar_one()


def count_datasets(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Dataset)).scalar_one()
