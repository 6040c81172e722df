"""The catalog's bulk writes: harvested pages and seed imports upserted a page at a time
(datasets, then assets by URL key, keeping ids and node-reported sizes), and the datasets a
full listing no longer lists marked removed upstream."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from priorizer.catalog.repo import (
    CHUNK,
    assets,
    datasets,
)
from priorizer.db import DriverStatement, dialect_insert, driver_json, driver_time, upsert_insert
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.sql import rank_of

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
