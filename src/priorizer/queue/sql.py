"""The queue's rules as SQL expressions, written once: every statement that sets `rank`
(harvest upserts, priority and state changes, claims, expiries, redraws, policy changes) builds
it here, over the columns of `assets` it is given, so that the database and
`priorizer.queue.policy` (`asset_rank`, for assets changed in Python) always agree."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, null, or_

from priorizer.queue.policy import QueuePolicy, counted_holders
from priorizer.queue.states import ASSET_ACTIVE, ASSET_GONE


def may_hand_out_sql(columns: Any) -> ColumnElement[bool]:
    """`may_hand_out` over a table's columns (`assets.c`), for ranks the database computes."""
    return or_(
        columns.state == ASSET_ACTIVE,
        and_(columns.state == ASSET_GONE, columns.has_magnet_link),
    )


def size_penalty_sql(budget_mb: Any, policy: QueuePolicy) -> Any:
    """`size_penalty` as a SQL expression over the budget column."""
    penalties = policy.size_penalties()
    if not penalties:
        return literal(0.0)
    return case(
        *((budget_mb > larger_than, penalty) for larger_than, penalty in penalties), else_=0.0
    )


def rank_sql(
    priority: Any,
    holders: Any,
    is_active: ColumnElement[bool],
    policy: QueuePolicy,
    *,
    budget_mb: Any,
) -> ColumnElement[Any]:
    """`rank` as a SQL expression over columns, so the database can recompute it in place."""
    value = priority - policy.copy_penalty * holders
    if policy.size_classes():
        value = value - size_penalty_sql(budget_mb, policy)
    return case((and_(is_active, holders < policy.replication_target), value), else_=null())


def rank_of(
    columns: Any,
    policy: QueuePolicy,
    *,
    priority: Any = None,
    holders_delta: int = 0,
    handed_out: Any = None,
    budget_mb: Any = None,
) -> ColumnElement[Any]:
    """The rank an UPDATE (or upsert) of `assets` sets: from the row's priority, holders, state
    and budget size, or from the new values the same statement sets for them (`priority`,
    `handed_out`, `budget_mb`; holders changed by `holders_delta`)."""
    holders = counted_holders(columns.copies, columns.disputed_copies, columns.leases)
    return rank_sql(
        columns.priority if priority is None else priority,
        holders + holders_delta if holders_delta else holders,
        may_hand_out_sql(columns) if handed_out is None else handed_out,
        policy,
        budget_mb=columns.budget_mb if budget_mb is None else budget_mb,
    )


def queue_order(columns: Any, *, smallest_first: bool) -> tuple[Any, ...]:
    """The queue order (docs/allocation.md): rank, highest first; then the smallest file first
    and id ascending (or, not `smallest_first`, the largest file and id descending), so that
    one walk of `ix_assets_queue (rank, budget_mb, id)` serves each level, forwards or back."""
    if smallest_first:
        return (columns.rank.desc(), columns.budget_mb.asc(), columns.id.asc())
    return (columns.rank.desc(), columns.budget_mb.desc(), columns.id.desc())
