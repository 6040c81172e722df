"""Picking what to lease, in queue order: the state a request starts from (`request_state`),
the level reads the walk makes on SQLite (`candidates`, `next_rank`), and on PostgreSQL the
server-side function that walks the levels and locks what it picks in one call (`pick_locked`;
installed by the migrations' environment)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    bindparam,
    exists,
    func,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.orm import Session

from priorizer.allocation.models import (
    ALLOCATED,
    FAILED,
    FAILED_SQL,
    HOLDING_SQL,
)
from priorizer.allocation.repo import (
    allocations,
    assets,
)
from priorizer.db import DriverStatement, driver_time
from priorizer.queue.sql import queue_order

# The hot path: statements compiled once and run on the driver's cursor (`DriverStatement`);
# building and executing SQLAlchemy constructs per call costs more than these index seeks.
# The node's open leases read once (`ix_allocations_node_status`), expiry tested per row: a
# condition on `expires_at` in the WHERE would let SQLite walk `ix_allocations_status_expires`,
# every node's open leases, instead. Whether any lease is due is the earliest expiry among
# open leases (one seek at the head of `ix_allocations_status_expires`), not an EXISTS over
# `expires_at <= :now`: PostgreSQL runs these statements prepared, on a plan made without the
# value of :now, and for the EXISTS that plan scanned the whole table whenever nothing was due
# (1,480 pages a request at 100,000 leases).
_REQUEST_STATE = DriverStatement(
    lambda _dialect: text(
        "SELECT count(CASE WHEN own.expires_at > :now THEN 1 END) AS open_count, "
        "coalesce(sum(CASE WHEN own.expires_at > :now THEN own.reserved_mb END), 0.0) "
        "AS reserved_mb, "
        "count(CASE WHEN own.expires_at <= :now THEN 1 END) > 0 AS node_due, "
        f"coalesce((SELECT min(expires_at) FROM allocations WHERE status = '{ALLOCATED}') "
        "<= :now, false) AS any_due "
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


def request_state(session: Session, *, node_id: str, now: datetime) -> RequestState:
    [row] = _REQUEST_STATE.rows(session, {"node_id": node_id, "now": driver_time(session, now)})
    return RequestState(
        int(row.open_count),
        float(row.reserved_mb),
        bool(row.node_due),
        bool(row.any_due),
    )


def id_list_type(dialect: str) -> Any:
    """`assets.id IN <the list passed as "ids">`, the way each database takes a list."""
    if dialect == "postgresql":
        return assets.c.id == func.any(bindparam("ids"))
    values = func.json_each(bindparam("ids")).table_valued("value")
    return assets.c.id.in_(select(values.c.value))


def _candidates_query(levels: int, skip_failed: bool, smallest_first: bool) -> Any:
    """One statement over `levels` rank levels: in each, an index range seek for the first
    assets in queue order (smallest first, or largest first) that fit `max_mb`, that the node
    does not hold (and, with `skip_failed`, did not fail since `failed_since`), at most `limit`
    of them. Only index columns are read (SQLite; PostgreSQL picks with
    `PICK_FUNCTIONS`)."""
    held = exists().where(
        allocations.c.node_id == bindparam("node_id"),
        allocations.c.asset_id == assets.c.id,
        text(f"allocations.{HOLDING_SQL}"),
    )
    failed = exists().where(
        allocations.c.node_id == bindparam("node_id"),
        allocations.c.asset_id == assets.c.id,
        text(f"allocations.{FAILED_SQL} AND allocations.status = '{FAILED}'"),
        allocations.c.closed_at > bindparam("failed_since"),
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
    its dead and locked entries included, once.

    Every read in it is a seek, planned once per session: left to itself, PostgreSQL plans
    the seek again at every execution (its estimates for one level differ from the generic
    plan's), which cost four times the seek itself (5 ms against 1 ms a call, measured), so
    the function keeps one generic plan (`plan_cache_mode = force_generic_plan`). That plan is
    made from the statistics of the moment, and one made while `allocations` was nearly empty
    scanned that table for every candidate, seconds per request once it had grown: sequential
    scans are off inside the function (`enable_seqscan = off`), whatever the statistics say."""
    after, start_mb = (">", "'-Infinity'") if smallest_first else ("<", "'Infinity'")
    return f"""
CREATE OR REPLACE FUNCTION {PICK_FUNCTIONS[smallest_first]}(
    p_levels float8[], p_max_mb float8, p_slots integer, p_node varchar,
    p_failed_since timestamptz, p_skip varchar[]
) RETURNS TABLE (picked_id varchar, picked_mb float8, picked_rank float8)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $pick$
DECLARE
    level float8;
    remaining float8 := p_max_mb;
    taken varchar[] := coalesce(p_skip, ARRAY[]::varchar[]);
    n integer := 0;
    after_mb float8;
    after_id varchar;
BEGIN
    FOREACH level IN ARRAY p_levels LOOP
        EXIT WHEN n >= p_slots;
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
            EXIT WHEN n >= p_slots;
        END LOOP;
    END LOOP;
END
$pick$"""


def install_functions(connection: Any) -> None:
    """Create or replace the server-side functions the hot path calls (PostgreSQL only):
    derived from this code, so every start brings them in line with it."""
    if connection.dialect.name == "postgresql":
        for name in PICK_FUNCTIONS.values():  # the earlier signature (a smallest budget too)
            connection.exec_driver_sql(
                f"DROP FUNCTION IF EXISTS {name}(float8[], float8, integer, varchar, "
                "timestamptz, float8, varchar[])"
            )
        for smallest_first in PICK_FUNCTIONS:
            connection.exec_driver_sql(pick_function_sql(smallest_first=smallest_first))


def _pick_statement(name: str) -> DriverStatement:
    return DriverStatement(
        lambda _dialect: text(
            "SELECT picked_id AS id, picked_mb AS budget_mb, picked_rank AS rank FROM "
            f"{name}(CAST(:levels AS float8[]), :max_mb, :slots, "
            "CAST(:node_id AS varchar), CAST(:failed_since AS timestamptz), "
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
