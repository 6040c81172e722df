"""The catalog's rows one at a time: read, list, set a priority or a state, redraw priorities
around the base ones. Bulk writes are `bulk`, figures `stats`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Table,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from priorizer.catalog.models import (
    ASSET_ACTIVE,
    Asset,
    Dataset,
)
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.sql import rank_of

assets = cast(Table, Asset.__table__)


datasets = cast(Table, Dataset.__table__)


CHUNK = 500


def scoring_rows(
    session: Session,
    *,
    after: str | None = None,
    dataset_ids: Sequence[str] = (),
    asset_ids: Sequence[str] = (),
    limit: int = 5000,
) -> list[Any]:
    """Assets with what scoring looks at (their dataset's fields): those listed, those of the
    datasets listed, or a batch in id order after `after`."""
    a, d = assets.c, datasets.c
    query = select(
        a.id,
        a.size_mb,
        a.manual_priority,
        a.base_priority,
        d.organization,
        d.title,
        d.name,
        d.tags,
        d.views,
        d.modified_at,
        d.removed_at,
    ).join_from(assets, datasets, a.dataset_id == d.id, isouter=True)
    if asset_ids:
        query = query.where(a.id.in_(asset_ids))
    elif dataset_ids:
        query = query.where(a.dataset_id.in_(dataset_ids))
    else:
        query = query.where(a.id > (after or "")).order_by(a.id).limit(limit)
    return list(session.execute(query))


def set_base_priorities(
    session: Session, *, priorities: dict[str, int], queue: QueuePolicy, now: datetime
) -> None:
    """Set the base (and effective) priority of assets without a manual priority."""
    if not priorities:
        return
    a = assets.c
    new: Any = bindparam("new_priority")
    statement = (
        update(assets)
        .where(a.id == bindparam("asset_id"), a.manual_priority.is_(None))
        .values(
            base_priority=new,
            priority=new,
            updated_at=now,
            rank=rank_of(assets.c, queue, priority=new),
        )
    )
    session.execute(statement, [{"asset_id": k, "new_priority": v} for k, v in priorities.items()])


def set_priority(
    session: Session, *, asset_id: str, priority: int, queue: QueuePolicy, now: datetime
) -> bool:
    """Set a manual priority (base and effective too: it wins over the scoring policy); False
    when the asset is unknown or already has it."""
    statement = (
        update(assets)
        .where(
            assets.c.id == asset_id,
            or_(
                assets.c.base_priority != priority,
                assets.c.manual_priority.is_distinct_from(priority),
            ),
        )
        .values(
            base_priority=priority,
            priority=priority,
            manual_priority=priority,
            updated_at=now,
            rank=rank_of(assets.c, queue, priority=priority),
        )
    )
    return bool(cast(CursorResult[Any], session.execute(statement)).rowcount)


def get(session: Session, *, asset_id: str, for_update: bool = False) -> Asset | None:
    return session.get(Asset, asset_id, with_for_update=for_update or None)


def set_state(
    session: Session, *, asset_id: str, state: str, queue: QueuePolicy, now: datetime
) -> bool:
    """Withdraw or reinstate an asset (re-ranked); reinstating also forgets its failures.
    False when the asset is unknown."""
    changes: dict[str, Any] = {
        "state": state,
        "state_reason": None,
        "updated_at": now,
        "rank": rank_of(assets.c, queue, handed_out=literal(state == ASSET_ACTIVE)),
    }
    if state == ASSET_ACTIVE:
        changes.update(failed_nodes=0, failures_reset_at=now)
    statement = update(assets).where(assets.c.id == asset_id).values(changes)
    return bool(cast(CursorResult[Any], session.execute(statement)).rowcount)


def id_after(session: Session, *, after: str, offset: int) -> str | None:
    """The id `offset` places after `after` in id order (None past the end)."""
    query = select(assets.c.id).where(assets.c.id > after).order_by(assets.c.id)
    return session.execute(query.offset(offset).limit(1)).scalar_one_or_none()


def _redraw_sql(dialect: str, jitter: int) -> str:
    """A new effective priority per row: base + a uniform whole offset in [-jitter, jitter],
    clamped to 1-10, drawn by the database itself."""
    span = 2 * jitter + 1
    if dialect == "postgresql":
        draw = f"base_priority + floor(random() * {span})::int - {jitter}"
        return f"greatest(1, least(10, {draw}))"
    # (x % n + n) % n: SQLite's % keeps the sign, and abs() overflows on the smallest integer.
    draw = f"base_priority + (random() % {span} + {span}) % {span} - {jitter}"
    return f"max(1, min(10, {draw}))"


def redraw_priorities(
    session: Session, *, after: str, upto: str | None, jitter: int, queue: QueuePolicy
) -> int:
    """Redraw the effective priority of the assets with ids in (after, upto], re-ranking those
    whose priority changed; base priorities are only read. The assets redrawn.

    PostgreSQL: one statement whose rows are locked in id order, passing over those another
    transaction holds (they wait for the next round), so it never deadlocks with writers that
    lock assets in id order. SQLite (one writer at a time) draws first and re-ranks after: it
    would evaluate a drawn value once per place it is used in one statement."""
    dialect = session.get_bind().dialect.name
    in_range = [assets.c.id > after] + ([assets.c.id <= upto] if upto is not None else [])
    draw: Any = literal_column(_redraw_sql(dialect, jitter)) if jitter else assets.c.base_priority
    if dialect == "postgresql":
        drawn = (
            select(assets.c.id, draw.label("priority"))
            .where(*in_range)
            .order_by(assets.c.id)
            .with_for_update(skip_locked=True, key_share=True)
            .subquery("drawn")
        )
        new_rank = rank_of(assets.c, queue, priority=drawn.c.priority)
        session.execute(
            update(assets)
            .where(assets.c.id == drawn.c.id, assets.c.priority != drawn.c.priority)
            .values(priority=drawn.c.priority, rank=new_rank)
        )
    else:
        session.execute(update(assets).where(*in_range).values(priority=draw))
        new_rank = rank_of(assets.c, queue)
        session.execute(
            update(assets)
            .where(*in_range, assets.c.rank.is_distinct_from(new_rank))
            .values(rank=new_rank)
        )
    return session.execute(select(func.count()).where(*in_range)).scalar_one()


def list_page(
    session: Session,
    *,
    after: str | None,
    limit: int,
    priority: int | None,
    state: str | None,
    copies: int | None = None,
    removed_upstream: bool = False,
) -> Sequence[Asset]:
    query = select(Asset).order_by(Asset.id).limit(limit)
    if after is not None:
        query = query.where(Asset.id > after)
    if priority is not None:
        query = query.where(Asset.priority == priority)
    if state is not None:
        query = query.where(Asset.state == state)
    if copies is not None:
        query = query.where(Asset.copies == copies)
    if removed_upstream:  # few datasets: found by their partial index, then their assets
        query = query.where(Asset.dataset_id.in_(removed_datasets()))
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


def removed_datasets() -> Any:
    return select(datasets.c.id).where(datasets.c.removed_at.is_not(None))
