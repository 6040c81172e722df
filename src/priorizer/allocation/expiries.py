"""Leases past their expiry, and leases left open by a withdrawn asset or node: closed in
batches, each row locked (`FOR UPDATE SKIP LOCKED`) so that concurrent expiries and
requests never close one twice. Their assets return to the queue (`claims.drop_leases`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    select,
    update,
)
from sqlalchemy.orm import Session

from priorizer.allocation.models import (
    ALLOCATED,
    EXPIRED,
    RELEASED,
    WITHDRAWN_NOTE,
)
from priorizer.allocation.repo import (
    allocations,
    assets,
)
from priorizer.catalog.models import ASSET_WITHDRAWN
from priorizer.db import DriverStatement, driver_time


def _lockable_ids(where: Any, *, limit: Any, order: Any) -> Any:
    """Ids of allocations matching `where`, at most `limit` in `order`, passing over rows
    another transaction has locked (PostgreSQL; SQLite has one writer at a time anyway)."""
    return (
        select(allocations.c.id)
        .where(where)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )


_EXPIRE_DUE = DriverStatement(
    lambda _dialect: (
        update(allocations)
        .where(
            allocations.c.id.in_(
                _lockable_ids(
                    and_(
                        allocations.c.status == ALLOCATED,
                        allocations.c.expires_at <= bindparam("now"),
                    ),
                    limit=bindparam("limit"),
                    order=allocations.c.expires_at,  # the index's order: no sort
                )
            )
        )
        .values(status=EXPIRED, closed_at=bindparam("now"))
        .returning(allocations.c.asset_id, allocations.c.node_id)
    )
)


_EXPIRE_NODE_DUE = DriverStatement(
    lambda _dialect: (
        update(allocations)
        .where(
            allocations.c.node_id == bindparam("node_id"),
            allocations.c.status == ALLOCATED,
            allocations.c.expires_at <= bindparam("now"),
        )
        .values(status=EXPIRED, closed_at=bindparam("now"))
        .returning(allocations.c.asset_id, allocations.c.node_id)
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
        update(allocations)
        .where(allocations.c.asset_id.in_(asset_ids), allocations.c.status == ALLOCATED)
        .values(status=RELEASED, closed_at=now, note=WITHDRAWN_NOTE)
        .returning(allocations.c.asset_id, allocations.c.node_id)
    )
    return [(row.asset_id, row.node_id) for row in session.execute(statement)]
