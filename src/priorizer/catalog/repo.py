"""Catalog queries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Table,
    bindparam,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from priorizer.catalog.models import (
    ASSET_ACTIVE,
    ASSET_UNREACHABLE,
    ASSET_WITHDRAWN,
    CONFLICTING_SQL,
    FAILING_SQL,
    Asset,
    Dataset,
)
from priorizer.db import DriverStatement, dialect_insert, driver_json, driver_time, upsert_insert
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.sql import rank_of

assets = cast(Table, Asset.__table__)
datasets = cast(Table, Dataset.__table__)
CHUNK = 500
ANALYZE_AFTER_ROWS = 5_000


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
            "manual_priority": new.manual_priority,
            "url_key": new.url_key,
            "extra": new.extra,
            "updated_at": new.updated_at,
            "budget_mb": new.budget_mb,
            "is_size_reported": false(),  # the row's size (or none) replaces nodes'
            "rank": rank_of(assets.c, queue, priority=new.priority, budget_mb=new.budget_mb),
        },
    )
    session.execute(statement, list(rows))
    if len(rows) >= ANALYZE_AFTER_ROWS and session.get_bind().dialect.name == "postgresql":
        # Fresh statistics for the next batch's lookups: until autovacuum gets round to it,
        # PostgreSQL plans them for the table as it was (a 1M-row import took 25 minutes).
        session.execute(text("ANALYZE assets"))


def by_url_keys(session: Session, *, keys: Sequence[str]) -> dict[str, tuple[str, float | None]]:
    """The asset (id, size) of each URL key known: the asset whose id is the key (harvested),
    or one from elsewhere (an import) holding that URL, which wins (the lowest id of several)."""
    a = assets.c
    found: dict[str, tuple[str, float | None]] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        for query in (
            select(a.url_key, a.id, a.size_mb).where(a.id.in_(chunk)),
            select(a.url_key, a.id, a.size_mb)
            .where(a.url_key.in_(chunk), a.url_key != a.id)  # the partial index's rows
            .order_by(a.id.desc()),
        ):
            found.update({key: (asset_id, size) for key, asset_id, size in session.execute(query)})
    return found


def upsert_harvested(
    session: Session, *, rows: Sequence[dict[str, Any]], queue: QueuePolicy
) -> None:
    """Insert harvested assets, or update them in place by id. What people gave is kept: a
    manual priority wins over the row's, and a size nodes reported stays when the portal
    gives none. State, copies and leases are the queue's. Straight through the driver: at
    thousands of rows a page, SQLAlchemy's per-row work would cost more than the writes."""
    if rows:
        timestamp = {k: driver_time(session, rows[0][k]) for k in ("created_at", "updated_at")}
        _upsert_harvested(queue).execute_many(session, [{**row, **timestamp} for row in rows])


@functools.cache
def _upsert_harvested(queue: QueuePolicy) -> DriverStatement:
    def build(dialect: str) -> Any:
        statement = upsert_insert(dialect, assets).values(
            {column: bindparam(column) for column in HARVESTED_COLUMNS}
        )
        new, a = statement.excluded, assets.c
        priority = case((a.manual_priority.is_(None), new.base_priority), else_=a.base_priority)
        size = func.coalesce(new.size_mb, a.size_mb)
        budget = func.coalesce(size, queue.unknown_size_mb)
        return statement.on_conflict_do_update(
            index_elements=[a.id],
            set_={
                "url": new.url,
                "url_key": new.url_key,
                "name": new.name,
                "format": new.format,
                "dataset_id": new.dataset_id,
                "size_mb": size,
                "budget_mb": budget,
                "is_size_reported": case(
                    (new.size_mb.is_(None), a.is_size_reported), else_=false()
                ),
                "base_priority": priority,
                "priority": priority,
                "updated_at": new.updated_at,
                "rank": rank_of(assets.c, queue, priority=priority, budget_mb=budget),
            },
        )

    return DriverStatement(build)


HARVESTED_COLUMNS = (
    "id",
    "url",
    "url_key",
    "name",
    "format",
    "size_mb",
    "dataset_id",
    "base_priority",
    "priority",
    "manual_priority",
    "state",
    "created_at",
    "updated_at",
    "copies",
    "leases",
    "budget_mb",
    "rank",
)


def refresh_statistics(session: Session) -> None:
    """PostgreSQL plans by its statistics: until autovacuum updates them, a catalog growing
    fast is planned as it was (lookups by URL key scanned the whole table, seconds each)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE assets"))
        session.execute(text("ANALYZE datasets"))


def upsert_datasets(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    """Insert datasets or update them in place by id; one listed again is no longer removed.
    Straight through the driver, as `upsert_harvested`."""
    if not rows:
        return
    first = rows[0]
    harvested_at = driver_time(session, first["harvested_at"])
    _UPSERT_DATASETS.execute_many(
        session,
        [
            {
                **row,
                "tags": driver_json(session, row["tags"]),
                "modified_at": driver_time(session, row["modified_at"])
                if row["modified_at"] is not None
                else None,
                "harvested_at": harvested_at,
            }
            for row in rows
        ],
    )


DATASET_COLUMNS = (
    "id",
    "name",
    "title",
    "organization",
    "tags",
    "modified_at",
    "source",
    "views",
    "harvested_at",
)


def _upsert_datasets_statement(dialect: str) -> Any:
    statement = upsert_insert(dialect, datasets).values(
        {column: bindparam(column) for column in DATASET_COLUMNS}
    )
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[datasets.c.id],
        set_={
            **{column: new[column] for column in DATASET_COLUMNS if column != "id"},
            "removed_at": None,
        },
    )


_UPSERT_DATASETS = DriverStatement(_upsert_datasets_statement)


def ensure_datasets(session: Session, *, ids: Sequence[str]) -> None:
    """Create the datasets not known yet, by id alone (imports name them and say no more);
    those known keep what a harvest stored."""
    statement = dialect_insert(session, datasets).on_conflict_do_nothing()
    for start in range(0, len(ids), CHUNK):
        session.execute(statement, [{"id": i, "tags": []} for i in ids[start : start + CHUNK]])


def removed_dataset_ids(session: Session, *, ids: Sequence[str]) -> list[str]:
    """Those of `ids` that are marked removed upstream."""
    found: list[str] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        query = select(datasets.c.id).where(
            datasets.c.id.in_(chunk), datasets.c.removed_at.is_not(None)
        )
        found += session.execute(query).scalars()
    return found


def mark_unlisted_removed(
    session: Session, *, source: str, listed_since: datetime, now: datetime
) -> list[str]:
    """Mark removed upstream the source's datasets that no listing since `listed_since` met;
    their ids."""
    d = datasets.c
    unlisted = (
        d.source == source,
        d.removed_at.is_(None),
        or_(d.harvested_at.is_(None), d.harvested_at < listed_since),
    )
    ids = list(session.execute(select(d.id).where(*unlisted).order_by(d.id)).scalars())
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        session.execute(update(datasets).where(d.id.in_(chunk)).values(removed_at=now))
    return ids


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


def distribution(session: Session, column: str) -> dict[str, int]:
    """How many assets have each value of `column` (priority, copies, state)."""
    col = assets.c[column]
    rows = session.execute(select(col, func.count()).group_by(col).order_by(col))
    return {str(value): n for value, n in rows}


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
        query = query.where(Asset.dataset_id.in_(_removed_datasets()))
    return session.execute(query).scalars().all()


def _removed_datasets() -> Any:
    return select(datasets.c.id).where(datasets.c.removed_at.is_not(None))


def removed_without_copy(
    session: Session, *, dataset_ids: Sequence[str] = (), limit: int
) -> tuple[list[Any], int]:
    """Assets of datasets removed upstream (of `dataset_ids`, or all) with no copy yet, highest
    priority first (up to `limit`), with their dataset's title and when it was removed; and
    how many there are in all."""
    a, d = assets.c, datasets.c
    where = [a.copies == 0, d.removed_at.is_not(None)]
    if dataset_ids:
        where.append(d.id.in_(list(dataset_ids)))
    joined = assets.join(datasets, d.id == a.dataset_id)
    rows = session.execute(
        select(
            a.id,
            a.name,
            a.url,
            a.priority,
            a.size_mb,
            d.id.label("dataset_id"),
            d.title,
            d.organization,
            d.removed_at,
        )
        .select_from(joined)
        .where(*where)
        .order_by(a.priority.desc(), a.id)
        .limit(limit)
    ).all()
    total = session.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    return list(rows), int(total)


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


def progress(session: Session, *, replication_target: int) -> list[dict[str, Any]]:
    """Per base priority and state: assets, copies, and how far the rescue got, in assets and
    in known megabytes. One pass, but a sorting one: about a second at a million assets on
    SQLite, so maintenance takes it once per cycle (`snapshot`) for the dashboard and metrics."""
    a = assets.c
    counted = a.copies - a.disputed_copies  # copies that agree (`allocation.evidence`)
    with_copy, at_target = counted > 0, counted >= replication_target
    columns = {
        "assets": func.count(),
        "priority_score": func.sum(a.priority),
        "copies": func.sum(a.copies),
        "with_copy": func.count().filter(with_copy),
        "at_target": func.count().filter(at_target),
        "conflicting": func.count().filter(a.conflicting_copies),
        "disputed": func.count().filter(a.disputed_copies > 0),
        "unknown_size": func.count().filter(a.size_mb.is_(None)),
        "megabytes": func.coalesce(func.sum(a.size_mb), 0.0),
        "megabytes_with_copy": func.coalesce(func.sum(a.size_mb).filter(with_copy), 0.0),
        "megabytes_at_target": func.coalesce(func.sum(a.size_mb).filter(at_target), 0.0),
    }
    query = (
        select(a.base_priority, a.state, *(c.label(name) for name, c in columns.items()))
        .group_by(a.base_priority, a.state)
        .order_by(a.base_priority.desc(), a.state)
    )
    return [
        {"priority": row.base_priority, "state": row.state}
        | {
            name: float(row._mapping[name])
            if name.startswith("megabytes")
            else int(row._mapping[name])
            for name in columns
        }
        for row in session.execute(query)
    ]


def stats(session: Session, *, replication_target: int) -> dict[str, Any]:
    """The catalog's totals: one pass with no sorting, cheaper than `progress`."""
    a = assets.c
    counted = a.copies - a.disputed_copies  # copies that agree (`allocation.evidence`)
    query = select(
        func.count(),
        func.coalesce(func.sum(a.priority), 0),
        func.coalesce(func.sum(a.copies), 0),
        func.count().filter(counted > 0),
        func.count().filter(counted >= replication_target),
        func.count().filter(a.conflicting_copies),
        func.coalesce(func.sum(a.disputed_copies), 0),
        func.count().filter(a.disputed_copies > 0),
        func.count().filter(a.state == ASSET_UNREACHABLE),
        func.count().filter(a.state == ASSET_WITHDRAWN),
    )
    row = session.execute(query).one()
    names = (
        "assets",
        "total_priority_score",
        "copies",
        "assets_with_a_copy",
        "assets_at_target",
        "assets_with_conflicting_copies",
        "disputed_copies",
        "assets_with_disputed_copies",
        "unreachable_assets",
        "withdrawn_assets",
    )
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(assets)).scalar_one()


def failing(session: Session, *, limit: int) -> tuple[Sequence[Asset], int]:
    """Assets some node failed since their last reinstatement, most failed first; and how
    many there are."""
    query = (
        select(Asset)
        .where(text(FAILING_SQL))  # as the partial index says it, so SQLite uses it
        .order_by(Asset.failed_nodes.desc(), Asset.id)
        .limit(limit)
    )
    total = select(func.count()).select_from(assets).where(text(FAILING_SQL))
    return session.execute(query).scalars().all(), session.execute(total).scalar_one()


def conflicting(session: Session, *, limit: int) -> Sequence[Asset]:
    """Assets whose copies were reported with different checksums, by id."""
    query = select(Asset).where(text(CONFLICTING_SQL)).order_by(Asset.id).limit(limit)
    return session.execute(query).scalars().all()


def count_datasets(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Dataset)).scalar_one()
