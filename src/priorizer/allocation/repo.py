"""Allocation queries. The race-prone ones are here, together, each named for what it guards.

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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    String,
    Table,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from priorizer.allocation.models import (
    ALLOCATED,
    COMPLETED,
    EXPIRED,
    FAILED,
    FAILED_SQL,
    HOLDING,
    HOLDING_SQL,
    RELEASED,
    WITHDRAWN_NOTE,
    Allocation,
)
from priorizer.catalog.models import ASSET_WITHDRAWN, IN_QUEUE_SQL, Asset
from priorizer.db import DriverStatement, driver_time
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.sql import queue_order, rank_of

assets = cast(Table, Asset.__table__)
leases = cast(Table, Allocation.__table__)


CANDIDATE_COLUMNS = (
    assets.c.id,
    assets.c.url,
    assets.c.name,
    assets.c.size_mb,
    assets.c.priority,
    assets.c.budget_mb,
    assets.c.format,
    assets.c.dataset_id,
)


# What a claim hands back: the candidate's columns and what a node verifies a download with.
CLAIM_COLUMNS = (
    *CANDIDATE_COLUMNS,
    assets.c.size_bytes,
    assets.c.checksum_sha256,
    assets.c.conflicting_copies,
    assets.c.copies,
)


# The hot path: statements compiled once and run on the driver's cursor (`DriverStatement`);
# building and executing SQLAlchemy constructs per call costs more than these index seeks.
# The node's open leases read once (`ix_allocations_node_status`), expiry tested per row: a
# condition on `expires_at` in the WHERE would let SQLite walk `ix_allocations_status_expires`,
# every node's open leases, instead.
_REQUEST_STATE = DriverStatement(
    lambda _dialect: text(
        "SELECT count(CASE WHEN own.expires_at > :now THEN 1 END) AS open_count, "
        "coalesce(sum(CASE WHEN own.expires_at > :now THEN own.reserved_mb END), 0.0) "
        "AS reserved_mb, "
        "count(CASE WHEN own.expires_at <= :now THEN 1 END) > 0 AS node_due, "
        f"EXISTS (SELECT 1 FROM allocations WHERE status = '{ALLOCATED}' "
        "AND expires_at <= :now) AS any_due, "
        f"(SELECT budget_mb FROM assets WHERE {IN_QUEUE_SQL} ORDER BY budget_mb LIMIT 1) "
        "AS smallest_mb "
        f"FROM allocations AS own WHERE own.node_id = :node_id AND own.status = '{ALLOCATED}'"
    )
)


@dataclass(frozen=True, slots=True)
class RequestState:
    """What an allocation reads before picking, in one round trip (index seeks all)."""

    open_count: int  # the node's open leases, those past their expiry aside
    reserved_mb: float  # what those reserve
    node_due: bool  # the node holds open leases past their expiry
    any_due: bool  # some node does
    smallest_mb: float | None  # what the smallest asset in the queue counts for; None: empty


def request_state(session: Session, *, node_id: str, now: datetime) -> RequestState:
    [row] = _REQUEST_STATE.rows(session, {"node_id": node_id, "now": driver_time(session, now)})
    return RequestState(
        int(row.open_count),
        float(row.reserved_mb),
        bool(row.node_due),
        bool(row.any_due),
        row.smallest_mb,
    )


def _id_list(dialect: str) -> Any:
    """`assets.id IN <the list passed as "ids">`, the way each database takes a list."""
    if dialect == "postgresql":
        return assets.c.id == func.any(bindparam("ids"))
    values = func.json_each(bindparam("ids")).table_valued("value")
    return assets.c.id.in_(select(values.c.value))


def _ids(session: Session, ids: Sequence[str]) -> Any:
    return list(ids) if session.get_bind().dialect.name == "postgresql" else json.dumps(ids)


def _candidates_query(levels: int, skip_failed: bool, smallest_first: bool) -> Any:
    """One statement over `levels` rank levels: in each, an index range seek for the first
    assets in queue order (smallest first, or largest first) that fit `max_mb`, that the node
    does not hold (and, with `skip_failed`, did not fail since `failed_since`), at most `limit`
    of them. Only index columns are read (SQLite; PostgreSQL picks with
    `PICK_FUNCTIONS`)."""
    held = exists().where(
        leases.c.node_id == bindparam("node_id"),
        leases.c.asset_id == assets.c.id,
        text(f"allocations.{HOLDING_SQL}"),
    )
    failed = exists().where(
        leases.c.node_id == bindparam("node_id"),
        leases.c.asset_id == assets.c.id,
        text(f"allocations.{FAILED_SQL} AND allocations.status = '{FAILED}'"),
        leases.c.closed_at > bindparam("failed_since"),
    )
    parts = [
        select(assets.c.id, assets.c.budget_mb, assets.c.rank)
        .where(assets.c.rank == bindparam(f"rank_{i}"), assets.c.budget_mb <= bindparam("max_mb"))
        .where(~held)
        .where(~failed if skip_failed else true())
        .order_by(*queue_order(assets.c, smallest_first=smallest_first)[1:])
        .limit(bindparam("limit"))
        .subquery(f"level_{i}")
        for i in range(levels)
    ]
    if levels == 1:
        return select(*parts[0].c)
    union = union_all(*(select(*part.c) for part in parts)).subquery("levels")
    return select(*union.c).order_by(*queue_order(union.c, smallest_first=smallest_first))


@functools.cache
def _candidates(levels: int, skip_failed: bool, smallest_first: bool) -> DriverStatement:
    return DriverStatement(lambda _dialect: _candidates_query(levels, skip_failed, smallest_first))


def candidates(
    session: Session,
    *,
    levels: Sequence[float],
    max_mb: float,
    node_id: str,
    failed_since: datetime | None,
    limit: int,
    smallest_first: bool,
) -> list[Any]:
    """Candidates (id, budget_mb, rank) from rank levels in queue order, one index seek per
    level, whatever the size of the catalog, passing over the assets the node failed since
    `failed_since` (None: it failed none lately, no need to look). Nothing is locked: see
    `lock_free`."""
    parameters: dict[str, Any] = {"max_mb": max_mb, "node_id": node_id, "limit": limit}
    if failed_since is not None:
        parameters["failed_since"] = driver_time(session, failed_since)
    parameters.update({f"rank_{i}": level for i, level in enumerate(levels)})
    statement = _candidates(
        levels=len(levels), skip_failed=failed_since is not None, smallest_first=smallest_first
    )
    return statement.rows(session, parameters)


def _queue_order_sql(*, smallest_first: bool) -> str:
    """The order within one rank level (`queue_order` without the rank), as PostgreSQL text."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    order = queue_order(assets.c, smallest_first=smallest_first)[1:]
    return ", ".join(str(term.compile(dialect=dialect)) for term in order)


# One function per fill order (FILL_ORDER), its ORDER BY fixed: planned once, not per call.
PICK_FUNCTIONS = {True: "priorizer_pick_smallest", False: "priorizer_pick_largest"}


def pick_function_sql(*, smallest_first: bool) -> str:
    """PostgreSQL: the pick of `allocation.service._pick` as one server-side function (one
    round trip instead of one or more per rank level), locking only what it takes.

    Level by level (highest first), it takes the first asset in queue order that fits what
    is left of the budget, again and again: the same choice as `policy.fit` over the level's
    rows. Each asset is read and locked in one seek (`FOR NO KEY UPDATE SKIP LOCKED`): an
    asset another transaction is taking right now is passed over, never waited for, and one
    changed since is read again and dropped if it no longer matches. So concurrent requests
    take different assets at once, and no asset is locked that is not taken. Each seek starts
    past the asset taken last (the budget only shrinks: what came before it in the level does
    not fit, is taken, or is being taken by another request), so a request walks each level,
    its dead and locked entries included, once."""
    after, start_mb = (">", "'-Infinity'") if smallest_first else ("<", "'Infinity'")
    return f"""
CREATE OR REPLACE FUNCTION {PICK_FUNCTIONS[smallest_first]}(
    p_levels float8[], p_max_mb float8, p_slots integer, p_node varchar,
    p_failed_since timestamptz, p_smallest float8, p_skip varchar[]
) RETURNS TABLE (picked_id varchar, picked_mb float8, picked_rank float8)
LANGUAGE plpgsql AS $pick$
DECLARE
    level float8;
    remaining float8 := p_max_mb;
    taken varchar[] := coalesce(p_skip, ARRAY[]::varchar[]);
    n integer := 0;
    after_mb float8;
    after_id varchar;
BEGIN
    FOREACH level IN ARRAY p_levels LOOP
        EXIT WHEN n >= p_slots OR remaining < p_smallest;
        after_mb := {start_mb};
        after_id := '';
        LOOP
            SELECT assets.id, assets.budget_mb INTO picked_id, picked_mb
            FROM assets
            WHERE assets.rank = level AND assets.budget_mb <= remaining
              AND (assets.budget_mb, assets.id) {after} (after_mb, after_id)
              AND assets.id <> ALL (taken)
              AND NOT EXISTS (
                SELECT 1 FROM allocations
                WHERE allocations.node_id = p_node AND allocations.asset_id = assets.id
                  AND allocations.{HOLDING_SQL})
              AND (p_failed_since IS NULL OR NOT EXISTS (
                SELECT 1 FROM allocations
                WHERE allocations.node_id = p_node AND allocations.asset_id = assets.id
                  AND allocations.{FAILED_SQL} AND allocations.status = '{FAILED}'
                  AND allocations.closed_at > p_failed_since))
            ORDER BY {_queue_order_sql(smallest_first=smallest_first)}
            LIMIT 1
            FOR NO KEY UPDATE OF assets SKIP LOCKED;
            EXIT WHEN NOT FOUND;
            picked_rank := level;
            RETURN NEXT;
            after_mb := picked_mb;
            after_id := picked_id;
            taken := taken || picked_id;
            remaining := remaining - picked_mb;
            n := n + 1;
            EXIT WHEN n >= p_slots OR remaining < p_smallest;
        END LOOP;
    END LOOP;
END
$pick$"""


def install_functions(connection: Any) -> None:
    """Create or replace the server-side functions the hot path calls (PostgreSQL only):
    derived from this code, so every start brings them in line with it."""
    if connection.dialect.name == "postgresql":
        for smallest_first in PICK_FUNCTIONS:
            connection.exec_driver_sql(pick_function_sql(smallest_first=smallest_first))


def _pick_statement(name: str) -> DriverStatement:
    return DriverStatement(
        lambda _dialect: text(
            "SELECT picked_id AS id, picked_mb AS budget_mb, picked_rank AS rank FROM "
            f"{name}(CAST(:levels AS float8[]), :max_mb, :slots, "
            "CAST(:node_id AS varchar), CAST(:failed_since AS timestamptz), :smallest, "
            "CAST(:skip AS varchar[]))"
        )
    )


_PICK = {order: _pick_statement(name) for order, name in PICK_FUNCTIONS.items()}


def pick_locked(
    session: Session,
    *,
    levels: Sequence[float],
    max_mb: float,
    slots: int,
    node_id: str,
    failed_since: datetime | None,
    smallest: float,
    skip: Sequence[str],
    smallest_first: bool,
) -> list[Any]:
    """PostgreSQL: the assets to lease, in queue order, locked until commit (`PICK_FUNCTIONS`)."""
    parameters = {
        "levels": list(levels),
        "max_mb": max_mb,
        "slots": slots,
        "node_id": node_id,
        "failed_since": failed_since,
        "smallest": smallest,
        "skip": list(skip),
    }
    return _PICK[smallest_first].rows(session, parameters)


def picks_in_database(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_NEXT_RANK = DriverStatement(
    lambda _dialect: (
        select(assets.c.rank)
        .where(assets.c.rank.is_not(None), assets.c.rank < bindparam("below"))
        .order_by(assets.c.rank.desc())
        .limit(1)
    )
)


def next_rank(session: Session, *, below: float) -> float | None:
    """The highest rank any asset has below `below` (an index seek), to skip empty levels."""
    return _NEXT_RANK.scalar(session, {"below": below})


def _claimable(dialect: str) -> Any:
    """The listed assets; on PostgreSQL only those no other transaction holds locked (it is
    claiming them right now): they are skipped, never waited for, so no deadlock either."""
    if dialect != "postgresql":
        return _id_list(dialect)
    free = assets.alias("free")
    locked = (
        select(free.c.id)
        .where(free.c.id == func.any(bindparam("ids")))
        .order_by(free.c.id)
        .with_for_update(skip_locked=True, key_share=True)  # FOR NO KEY UPDATE: ids stay
    )
    return assets.c.id.in_(locked.scalar_subquery())


@functools.cache
def _claim(policy: QueuePolicy) -> DriverStatement:
    return DriverStatement(
        lambda dialect: (
            update(assets)
            .where(_claimable(dialect), assets.c.rank.is_not(None))
            .values(leases=assets.c.leases + 1, rank=rank_of(assets.c, policy, holders_delta=1))
            .returning(*CLAIM_COLUMNS)
        )
    )


def claim(session: Session, *, asset_ids: Sequence[str], policy: QueuePolicy) -> dict[str, Any]:
    """Count one more open lease on each listed asset that is still in the queue and free to
    take; return those (with what a node needs to fetch them), by id."""
    if not asset_ids:
        return {}
    rows = _claim(policy).rows(session, {"ids": _ids(session, asset_ids)})
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
            .where(_claimable(dialect), assets.c.rank.is_not(None))
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
            insert(leases)
            .from_select([name.strip() for name in _LEASE_COLUMNS.split(",")], rows)
            .returning(leases.c.asset_id, leases.c.id)
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


_INSERT_LEASE_ROWS = leases.insert().returning(leases.c.asset_id, leases.c.node_id, leases.c.id)


# Magnet links of one asset's copies handed to a node (newest first): enough peers to try.
MAGNETS_PER_ASSET = 10


def node_open_leases(session: Session, *, node_id: str) -> Sequence[Any]:
    """The node's open leases with their assets' details, oldest first."""
    query = (
        select(
            *CLAIM_COLUMNS,
            leases.c.id.label("allocation_id"),
            leases.c.expires_at,
            leases.c.reserved_mb,
        )
        .join(assets, assets.c.id == leases.c.asset_id)
        .where(leases.c.node_id == node_id, leases.c.status == ALLOCATED)
        .order_by(leases.c.id)
    )
    return session.execute(query).all()


def magnet_links(session: Session, *, asset_ids: Sequence[str]) -> dict[str, list[str]]:
    """The magnet links nodes reported with their copies of these assets, newest first."""
    query = (
        select(leases.c.asset_id, leases.c.magnet_link)
        .where(
            leases.c.asset_id.in_(asset_ids),
            leases.c.status == COMPLETED,
            leases.c.magnet_link.is_not(None),
        )
        .order_by(leases.c.id.desc())
    )
    found: dict[str, list[str]] = {}
    for asset_id, link in session.execute(query):
        links = found.setdefault(asset_id, [])
        if len(links) < MAGNETS_PER_ASSET and link not in links:
            links.append(link)
    return found


def insert_leases(session: Session, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """Insert allocations of any nodes and states (imports); (asset id, node id) -> id."""
    result = session.execute(_INSERT_LEASE_ROWS, list(rows))
    return {(asset_id, node_id): id_ for asset_id, node_id, id_ in result}


def close_lease(
    session: Session, *, asset_id: str, node_id: str, status: str, now: datetime
) -> int | None:
    """Close this node's open lease on this asset; None when it holds none (someone else won)."""
    statement = (
        update(leases)
        .where(
            leases.c.asset_id == asset_id,
            leases.c.node_id == node_id,
            leases.c.status == ALLOCATED,
        )
        .values(status=status, closed_at=now)
        .returning(leases.c.id)
    )
    return session.execute(statement).scalar_one_or_none()


def drop_leases(session: Session, *, counts: dict[str, int], policy: QueuePolicy) -> None:
    """Count `n` fewer open leases on each asset, putting it back in the queue."""
    for asset_id, n in sorted(counts.items()):  # id order: no deadlock with other writers
        session.execute(
            update(assets)
            .where(assets.c.id == asset_id)
            .values(leases=assets.c.leases - n, rank=rank_of(assets.c, policy, holders_delta=-n))
        )


def _lockable_ids(where: Any, *, limit: Any, order: Any) -> Any:
    """Ids of allocations matching `where`, at most `limit` in `order`, passing over rows
    another transaction has locked (PostgreSQL; SQLite has one writer at a time anyway)."""
    return (
        select(leases.c.id)
        .where(where)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


_EXPIRE_DUE = DriverStatement(
    lambda _dialect: (
        update(leases)
        .where(
            leases.c.id.in_(
                _lockable_ids(
                    and_(leases.c.status == ALLOCATED, leases.c.expires_at <= bindparam("now")),
                    limit=bindparam("limit"),
                    order=leases.c.expires_at,  # the index's order: no sort
                )
            )
        )
        .values(status=EXPIRED, closed_at=bindparam("now"))
        .returning(leases.c.asset_id, leases.c.node_id)
    )
)


_EXPIRE_NODE_DUE = DriverStatement(
    lambda _dialect: (
        update(leases)
        .where(
            leases.c.node_id == bindparam("node_id"),
            leases.c.status == ALLOCATED,
            leases.c.expires_at <= bindparam("now"),
        )
        .values(status=EXPIRED, closed_at=bindparam("now"))
        .returning(leases.c.asset_id, leases.c.node_id)
    )
)


def expire_due(
    session: Session, *, now: datetime, limit: int, node_id: str | None = None
) -> list[tuple[str, str]]:
    """Close open leases whose expiry passed: every one of `node_id`'s, or else up to `limit`
    of any node's (oldest first). (asset, node) of each. An index seek that finds nothing
    when nothing is due, so requests may call it."""
    parameters: dict[str, Any] = {"now": driver_time(session, now)}
    if node_id is not None:
        rows = _EXPIRE_NODE_DUE.rows(session, {**parameters, "node_id": node_id})
    else:
        rows = _EXPIRE_DUE.rows(session, {**parameters, "limit": limit})
    return [(row.asset_id, row.node_id) for row in rows]


def close_orphans(session: Session, *, now: datetime, limit: int) -> list[tuple[str, str]]:
    """Close the open leases on up to `limit` withdrawn assets that still count some: found
    from the assets' own lease counters (an index seek), not by reading every open lease."""
    orphaned = (
        select(assets.c.id)
        .where(assets.c.state == ASSET_WITHDRAWN, assets.c.leases > 0)
        .order_by(assets.c.id)
        .limit(limit)
    )
    asset_ids = list(session.execute(orphaned).scalars())
    if not asset_ids:
        return []
    statement = (
        update(leases)
        .where(leases.c.asset_id.in_(asset_ids), leases.c.status == ALLOCATED)
        .values(status=RELEASED, closed_at=now, note=WITHDRAWN_NOTE)
        .returning(leases.c.asset_id, leases.c.node_id)
    )
    return [(row.asset_id, row.node_id) for row in session.execute(statement)]


def lease_of(
    session: Session,
    *,
    asset_id: str,
    node_id: str,
    status: str,
    note: str | None = None,
    for_update: bool = True,
) -> Allocation | None:
    """The node's newest allocation of the asset in that status (and with that note, when
    given), locked until commit unless not `for_update`."""
    query = (
        select(Allocation)
        .where(
            Allocation.asset_id == asset_id,
            Allocation.node_id == node_id,
            Allocation.status == status,
            *([Allocation.note == note] if note is not None else []),
        )
        .order_by(Allocation.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


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
        update(leases)
        .where(
            leases.c.node_id == node_id,
            leases.c.status == ALLOCATED,
            leases.c.expires_at > now,
        )
        .values(renewed_at=now, expires_at=expires_at)
        .returning(leases.c.asset_id)
    )
    if asset_ids is not None:
        statement = statement.where(leases.c.asset_id.in_(asset_ids))
    return list(session.execute(statement).scalars())


def copies_on(session: Session, *, node_id: str) -> list[tuple[str, bool]]:
    """Assets the node holds a copy of, each with whether that copy is disputed."""
    query = select(leases.c.asset_id, leases.c.dispute.is_not(None)).where(
        leases.c.node_id == node_id, leases.c.status == COMPLETED
    )
    return [(asset_id, bool(disputed)) for asset_id, disputed in session.execute(query)]


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


def nodes_with_expiries(session: Session, *, since: datetime) -> list[str]:
    """Nodes with a lease that was due to expire after `since` and did."""
    query = (
        select(leases.c.node_id)
        .where(leases.c.status == EXPIRED, leases.c.expires_at > since)
        .distinct()
    )
    return sorted(session.execute(query).scalars())


def expired_counts(session: Session, *, node_ids: Sequence[str]) -> dict[str, int]:
    """All expired leases of each node listed (an index-only count per node)."""
    counts: dict[str, int] = {}
    for start in range(0, len(node_ids), 500):
        chunk = node_ids[start : start + 500]
        query = (
            select(leases.c.node_id, func.count())
            .where(leases.c.node_id.in_(chunk), leases.c.status == EXPIRED)
            .group_by(leases.c.node_id)
        )
        counts.update({node_id: n for node_id, n in session.execute(query)})
    return counts


def turnarounds(session: Session, *, node_id: str, limit: int) -> list[float]:
    """Seconds from lease to copy, for the node's latest completions."""
    query = (
        select(leases.c.allocated_at, leases.c.closed_at)
        .where(leases.c.node_id == node_id, leases.c.status == COMPLETED)
        .order_by(leases.c.id.desc())
        .limit(limit)
    )
    return [
        (closed - allocated).total_seconds()
        for allocated, closed in session.execute(query)
        if closed is not None
    ]


def open_totals(session: Session) -> tuple[int, float]:
    """Open leases everywhere, and the MiB they reserve."""
    query = select(func.count(), func.coalesce(func.sum(leases.c.reserved_mb), 0.0)).where(
        leases.c.status == ALLOCATED
    )
    count, reserved = session.execute(query).one()
    return int(count), float(reserved)


def last_allocation_id(session: Session) -> int:
    return session.execute(select(func.coalesce(func.max(leases.c.id), 0))).scalar_one()


def recompute_ranks(session: Session, *, policy: QueuePolicy, unknown_size_mb: float) -> int:
    """Rewrite every asset's rank and budget size (after the queue policy changed)."""
    budget = func.coalesce(assets.c.size_mb, unknown_size_mb)
    statement = update(assets).values(
        rank=rank_of(assets.c, policy, budget_mb=budget), budget_mb=budget
    )
    return cast(CursorResult[Any], session.execute(statement)).rowcount or 0


def ranking(session: Session, *, limit: int, smallest_first: bool) -> Sequence[Any]:
    query = (
        select(
            *CANDIDATE_COLUMNS,
            assets.c.rank,
            assets.c.copies,
            assets.c.leases,
            assets.c.disputed_copies,
        )
        .where(assets.c.rank.is_not(None))
        .order_by(*queue_order(assets.c, smallest_first=smallest_first))
        .limit(limit)
    )
    return session.execute(query).all()


def list_allocations(
    session: Session,
    *,
    node_id: str | None,
    asset_id: str | None,
    status: str | None,
    after: int | None,
    limit: int,
) -> Sequence[Allocation]:
    query = select(Allocation).order_by(Allocation.id).limit(limit)
    conditions = [
        condition
        for condition in (
            Allocation.node_id == node_id if node_id is not None else None,
            Allocation.asset_id == asset_id if asset_id is not None else None,
            Allocation.status == status if status is not None else None,
            Allocation.id > after if after is not None else None,
        )
        if condition is not None
    ]
    if conditions:
        query = query.where(and_(*conditions))
    return session.execute(query).scalars().all()


def latest(session: Session, *, limit: int) -> Sequence[Any]:
    """The newest leases, with their asset's name."""
    query = (
        select(Allocation, assets.c.name.label("asset_name"))
        .join(assets, assets.c.id == Allocation.asset_id)
        .order_by(Allocation.id.desc())
        .limit(limit)
    )
    return session.execute(query).all()


def asset_holdings(session: Session, *, asset_id: str) -> Sequence[Allocation]:
    """The asset's open leases and copies, all of them, oldest first."""
    query = (
        select(Allocation)
        .where(Allocation.asset_id == asset_id, Allocation.status.in_(HOLDING))
        .order_by(Allocation.id)
    )
    return session.execute(query).scalars().all()


def asset_history(session: Session, *, asset_id: str, limit: int) -> Sequence[Allocation]:
    """The asset's closed allocations, newest first."""
    query = (
        select(Allocation)
        .where(Allocation.asset_id == asset_id, Allocation.status.not_in(HOLDING))
        .order_by(Allocation.id.desc())
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def latest_failures(session: Session, *, asset_ids: Sequence[str]) -> dict[str, Any]:
    """Each listed asset's latest failed lease (`node_id`, `note`, `closed_at`), if any."""
    if not asset_ids:
        return {}
    newest = (
        select(func.max(leases.c.id))
        .where(leases.c.asset_id.in_(asset_ids), leases.c.status == FAILED)
        .group_by(leases.c.asset_id)
    )
    query = select(leases.c.asset_id, leases.c.node_id, leases.c.note, leases.c.closed_at).where(
        leases.c.id.in_(newest)
    )
    return {row.asset_id: row for row in session.execute(query)}


def reported_checksums(
    session: Session, *, asset_ids: Sequence[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """The checksums nodes reported with their copies of each listed asset: (checksum, the
    nodes that reported it), the most reported first."""
    query = (
        select(leases.c.asset_id, leases.c.checksum_sha256, leases.c.node_id)
        .where(
            leases.c.asset_id.in_(asset_ids),
            leases.c.status == COMPLETED,
            leases.c.checksum_sha256.is_not(None),
        )
        .order_by(leases.c.asset_id, leases.c.node_id)
    )
    found: dict[str, dict[str, list[str]]] = {}
    for asset_id, checksum, node_id in session.execute(query):
        found.setdefault(asset_id, {}).setdefault(checksum, []).append(node_id)
    return {
        asset_id: sorted(sums.items(), key=lambda item: (-len(item[1]), item[0]))
        for asset_id, sums in found.items()
    }


def holding_status(session: Session, *, asset_id: str, node_id: str) -> str | None:
    """ALLOCATED or COMPLETED when the node holds the asset, else None."""
    query = select(leases.c.status).where(
        leases.c.asset_id == asset_id, leases.c.node_id == node_id, leases.c.status.in_(HOLDING)
    )
    return session.execute(query.limit(1)).scalar_one_or_none()


def node_summaries(session: Session, *, node_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Open leases, reserved space and copies for each node listed."""
    query = (
        select(
            leases.c.node_id,
            leases.c.status,
            func.count(),
            func.coalesce(func.sum(leases.c.reserved_mb), 0.0),
        )
        .where(leases.c.node_id.in_(node_ids), leases.c.status.in_(HOLDING))
        .group_by(leases.c.node_id, leases.c.status)
    )
    summary: dict[str, dict[str, Any]] = {
        node_id: {"open_leases": 0, "reserved_mb": 0.0, "copies": 0} for node_id in node_ids
    }
    for node_id, status, count, reserved in session.execute(query):
        if status == ALLOCATED:
            summary[node_id].update(open_leases=count, reserved_mb=float(reserved))
        else:
            summary[node_id]["copies"] = count
    return summary


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


def asset_budgets(session: Session, *, asset_ids: Sequence[str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for start in range(0, len(asset_ids), 500):
        chunk = asset_ids[start : start + 500]
        query = select(assets.c.id, assets.c.budget_mb).where(assets.c.id.in_(chunk))
        found.update({row.id: row.budget_mb for row in session.execute(query)})
    return found


def iterate_holdings(session: Session, *, batch: int = 5000) -> Any:
    after = 0
    while True:
        query = (
            select(leases)
            .where(leases.c.status.in_(HOLDING), leases.c.id > after)
            .order_by(leases.c.id)
            .limit(batch)
        )
        rows = session.execute(query).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id
