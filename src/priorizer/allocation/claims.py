"""The race-prone statements of allocation, together, each named for what it guards: claiming
assets and opening leases, closing and expiring them, and every change to the holders an asset
counts (with its rank, `queue.sql.rank_of`).

Concurrency contract (PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE):
- A node's requests serialise on its `nodes` row, locked by the upsert that starts `allocate`,
  so its budget (rule 1) is read and spent by one transaction at a time.
- Candidates are read without locks; the claim then takes only the picked rows it can lock at
  once (`FOR UPDATE SKIP LOCKED` inside the UPDATE): a row another request is claiming is
  passed over, never waited for (so no deadlocks), and the request picks again past it.
- Counters change only by relative, conditional UPDATEs (`leases = leases + 1 WHERE rank IS NOT
  NULL`), so the replication target (rule 3) holds whatever interleaving happens.
- `uq_allocations_holding` makes a second open lease or copy on one node impossible.
"""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    String,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from priorizer.allocation.models import (
    ALLOCATED,
)
from priorizer.allocation.picks import (
    id_list_type,
)
from priorizer.allocation.repo import (
    CLAIM_COLUMNS,
    allocations,
    assets,
    id_parameter,
)
from priorizer.db import DriverStatement, driver_time
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.sql import rank_of


def _listed(dialect: str, *, skip_locked: bool) -> Any:
    """`assets.id IN <the list passed as "ids">`; on PostgreSQL locking those rows first, in
    id order, as every writer of many assets does (no deadlock between them). `skip_locked`:
    only the rows no other transaction holds locked (it is claiming them right now), skipped,
    never waited for."""
    if dialect != "postgresql":
        return id_list_type(dialect)
    rows = assets.alias("listed")
    locked = (
        select(rows.c.id)
        .where(rows.c.id == func.any(bindparam("ids")))
        .order_by(rows.c.id)
        .with_for_update(skip_locked=skip_locked, key_share=True)  # FOR NO KEY UPDATE: ids stay
    )
    return assets.c.id.in_(locked.scalar_subquery())


@functools.cache
def _claim(policy: QueuePolicy) -> DriverStatement:
    return DriverStatement(
        lambda dialect: (
            update(assets)
            .where(_listed(dialect, skip_locked=True), assets.c.rank.is_not(None))
            .values(leases=assets.c.leases + 1, rank=rank_of(assets.c, policy, holders_delta=1))
            .returning(*CLAIM_COLUMNS)
        )
    )


def claim(session: Session, *, asset_ids: Sequence[str], policy: QueuePolicy) -> dict[str, Any]:
    """Count one more open lease on each listed asset that is still in the queue and free to
    take; return those (with what a node needs to fetch them), by id."""
    if not asset_ids:
        return {}
    rows = _claim(policy).rows(session, {"ids": id_parameter(session, asset_ids)})
    return {row.id: row for row in rows}


_LEASE_COLUMNS = (
    "asset_id, node_id, status, reserved_mb, allocated_at, renewed_at, expires_at, unproven_address"
)


_INSERT_LEASES = DriverStatement(
    lambda dialect: text(
        f"INSERT INTO allocations ({_LEASE_COLUMNS}) "
        f"SELECT t.asset_id, :node_id, '{ALLOCATED}', t.reserved_mb, :now, :now, :expires_at, "
        "CAST(:unproven_address AS varchar(64)) "
        + (
            "FROM unnest(CAST(:asset_ids AS varchar[]), CAST(:reserved AS float8[])) "
            "AS t(asset_id, reserved_mb) "
            if dialect == "postgresql"
            else "FROM (SELECT json_extract(value, '$[0]') AS asset_id, "
            "json_extract(value, '$[1]') AS reserved_mb FROM json_each(:rows)) AS t "
        )
        + "RETURNING asset_id, id"
    )
)


def open_leases(
    session: Session,
    *,
    node_id: str,
    reserved: Sequence[tuple[str, float]],
    now: datetime,
    expires_at: datetime,
    unproven_address: str | None,
) -> dict[str, int]:
    """Open one lease per (asset id, reserved MiB) for the node (an unproven one asking from
    `unproven_address`, in open mode); returns asset id -> lease id."""
    parameters = {
        "node_id": node_id,
        "unproven_address": unproven_address,
        "now": driver_time(session, now),
        "expires_at": driver_time(session, expires_at),
        "rows": json.dumps(reserved),
        "asset_ids": [asset_id for asset_id, _ in reserved],
        "reserved": [mb for _, mb in reserved],
    }
    return {row.asset_id: row.id for row in _INSERT_LEASES.rows(session, parameters)}


@functools.cache
def _claim_and_open(policy: QueuePolicy) -> DriverStatement:
    """PostgreSQL: `claim` and `open_leases` as one statement (one round trip): the UPDATE
    counting the leases feeds the INSERT opening them, in the order of the ids given."""

    def build(dialect: str) -> Any:
        claimed = (
            update(assets)
            .where(_listed(dialect, skip_locked=True), assets.c.rank.is_not(None))
            .values(leases=assets.c.leases + 1, rank=rank_of(assets.c, policy, holders_delta=1))
            .returning(*CLAIM_COLUMNS)
            .cte("claimed")
        )
        rows = select(
            claimed.c.id,
            sql_cast(bindparam("node_id"), String(200)),
            literal(ALLOCATED, String(20)),
            claimed.c.budget_mb,
            bindparam("now"),
            bindparam("now"),
            bindparam("expires_at"),
            sql_cast(bindparam("unproven_address"), String(64)),
        ).order_by(func.array_position(bindparam("ids"), claimed.c.id))
        opened = (
            insert(allocations)
            .from_select([name.strip() for name in _LEASE_COLUMNS.split(",")], rows)
            .returning(allocations.c.asset_id, allocations.c.id)
            .cte("opened")
        )
        return select(*claimed.c, opened.c.id.label("allocation_id")).join(
            opened, opened.c.asset_id == claimed.c.id
        )

    return DriverStatement(build)


def claim_leases(
    session: Session,
    *,
    asset_ids: Sequence[str],
    policy: QueuePolicy,
    node_id: str,
    now: datetime,
    expires_at: datetime,
    unproven_address: str | None,
) -> dict[str, tuple[Any, int]]:
    """`claim` the listed assets and open the node's leases on those won: asset id -> (the
    claimed row, the lease id), in the order given."""
    if not asset_ids:
        return {}
    if session.get_bind().dialect.name != "postgresql":
        claimed = claim(session, asset_ids=asset_ids, policy=policy)
        won = [claimed[asset_id] for asset_id in asset_ids if asset_id in claimed]
        if not won:
            return {}
        ids = open_leases(
            session,
            node_id=node_id,
            reserved=[(row.id, row.budget_mb) for row in won],
            now=now,
            expires_at=expires_at,
            unproven_address=unproven_address,
        )
        return {row.id: (row, ids[row.id]) for row in won}
    parameters = {
        "ids": list(asset_ids),
        "node_id": node_id,
        "now": now,
        "expires_at": expires_at,
        "unproven_address": unproven_address,
    }
    rows = _claim_and_open(policy).rows(session, parameters)
    found = {row.id: row for row in rows}
    shape = _claim_row_type()
    return {
        asset_id: (shape._make(found[asset_id][:-1]), found[asset_id].allocation_id)
        for asset_id in asset_ids
        if asset_id in found
    }


@functools.cache
def _claim_row_type() -> Any:
    return collections.namedtuple("ClaimedRow", [column.name for column in CLAIM_COLUMNS])


_UNPROVEN_OPEN = DriverStatement(
    lambda _dialect: text(
        "SELECT count(*) FROM (SELECT 1 FROM allocations "
        f"WHERE unproven_address = :address AND status = '{ALLOCATED}' LIMIT :limit) AS open"
    )
)


def unproven_open(session: Session, *, address: str, limit: int) -> int:
    """Open leases granted to unproven nodes asking from `address`, counted up to `limit`
    (an index range, never longer than the cap)."""
    return int(_UNPROVEN_OPEN.scalar(session, {"address": address, "limit": limit}))


# PostgreSQL advisory locks of this class are taken per client address (the key is a hash).
ADDRESS_LOCK_CLASS = 74_251_003


_LOCK_ADDRESS = DriverStatement(
    lambda _dialect: text("SELECT pg_advisory_xact_lock(:class_id, hashtext(:address))")
)


def lock_address(session: Session, *, address: str) -> None:
    """Serialise, until commit, the requests of unproven nodes from one address: their
    leases are capped together (PostgreSQL; SQLite has one writer at a time anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        _LOCK_ADDRESS.execute(session, {"class_id": ADDRESS_LOCK_CLASS, "address": address})


_INSERT_LEASE_ROWS = allocations.insert().returning(
    allocations.c.asset_id, allocations.c.node_id, allocations.c.id
)


def insert_leases(session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert allocations of any nodes and states (imports); (asset id, node id) -> id."""
    result = session.execute(_INSERT_LEASE_ROWS, list(rows))
    return {(asset_id, node_id): id_ for asset_id, node_id, id_ in result}


def close_lease(
    session: Session, *, asset_id: str, node_id: str, status: str, now: datetime
) -> int | None:
    """Close this node's open lease on this asset; None when it holds none (someone else won)."""
    statement = (
        update(allocations)
        .where(
            allocations.c.asset_id == asset_id,
            allocations.c.node_id == node_id,
            allocations.c.status == ALLOCATED,
        )
        .values(status=status, closed_at=now)
        .returning(allocations.c.id)
    )
    return session.execute(statement).scalar_one_or_none()


@functools.cache
def _drop(policy: QueuePolicy, n: int) -> DriverStatement:
    return DriverStatement(
        lambda dialect: (
            update(assets)
            .where(_listed(dialect, skip_locked=False))
            .values(leases=assets.c.leases - n, rank=rank_of(assets.c, policy, holders_delta=-n))
        )
    )


def drop_leases(session: Session, *, counts: dict[str, int], policy: QueuePolicy) -> None:
    """Count `n` fewer open leases on each asset, putting it back in the queue: one statement
    for all the assets that lose as many (usually one each), not one per asset (a batch of
    2,000 expiries took 0.9 s of the writers' turn that way)."""
    by_count: dict[int, list[str]] = collections.defaultdict(list)
    for asset_id, n in sorted(counts.items()):
        by_count[n].append(asset_id)
    for n, asset_ids in sorted(by_count.items()):
        _drop(policy, n).execute(session, {"ids": id_parameter(session, asset_ids)})


def renew(
    session: Session,
    *,
    node_id: str,
    asset_ids: Sequence[str] | None,
    now: datetime,
    expires_at: datetime,
) -> list[str]:
    """Extend the node's open, unexpired leases (those on `asset_ids`, or all); their assets."""
    statement = (
        update(allocations)
        .where(
            allocations.c.node_id == node_id,
            allocations.c.status == ALLOCATED,
            allocations.c.expires_at > now,
        )
        .values(renewed_at=now, expires_at=expires_at)
        .returning(allocations.c.asset_id)
    )
    if asset_ids is not None:
        statement = statement.where(allocations.c.asset_id.in_(asset_ids))
    return list(session.execute(statement).scalars())


def change_copies(
    session: Session, *, counts: dict[str, tuple[int, int]], policy: QueuePolicy
) -> None:
    """Count `n` more (or fewer, when negative) copies on each asset, `d` of them disputed,
    re-ranking it; `counts` maps asset ids to (n, d)."""
    for asset_id, (n, d) in sorted(counts.items()):  # id order: no deadlock with other writers
        if n or d:
            session.execute(
                update(assets)
                .where(assets.c.id == asset_id)
                .values(
                    copies=assets.c.copies + n,
                    disputed_copies=assets.c.disputed_copies + d,
                    rank=rank_of(assets.c, policy, holders_delta=n - d),
                )
            )


def recompute_ranks(session: Session, *, policy: QueuePolicy, unknown_size_mb: float) -> int:
    """Rewrite every asset's rank and budget size (after the queue policy changed)."""
    budget = func.coalesce(assets.c.size_mb, unknown_size_mb)
    statement = update(assets).values(
        rank=rank_of(assets.c, policy, budget_mb=budget), budget_mb=budget
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0


def add_holders(
    session: Session, *, asset_id: str, new_leases: int, new_copies: int, policy: QueuePolicy
) -> None:
    """Count imported leases and copies on an asset (may exceed the target: history is kept)."""
    session.execute(
        update(assets)
        .where(assets.c.id == asset_id)
        .values(
            leases=assets.c.leases + new_leases,
            copies=assets.c.copies + new_copies,
            rank=rank_of(assets.c, policy, holders_delta=new_leases + new_copies),
        )
    )
