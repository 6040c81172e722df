"""Queries on one asset's copies and failures, for `allocation.lifecycle`: the evidence that
`allocation.evidence` weighs. Each reads the rows of one asset (a handful), by its index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from priorizer.allocation.evidence import NODE_SIDE_CODES
from priorizer.allocation.models import COMPLETED, FAILED, Allocation

allocations = cast(Table, Allocation.__table__)


def lock_copies(session: Session, *, asset_id: str) -> None:
    """Lock the asset's copies, in id order, before the asset (the documented lock order):
    settling the asset may rewrite their `dispute`."""
    query = (
        select(allocations.c.id)
        .where(allocations.c.asset_id == asset_id, allocations.c.status == COMPLETED)
        .order_by(allocations.c.id)
        .with_for_update()
    )
    session.execute(query).all()


def copies_of(session: Session, *, asset_id: str) -> Sequence[Any]:
    """The asset's completed copies, in the order they were reported."""
    query = (
        select(
            allocations.c.id,
            allocations.c.node_id,
            allocations.c.checksum_sha256,
            allocations.c.reported_size_mb,
            allocations.c.dispute,
            allocations.c.closed_at,
        )
        .where(allocations.c.asset_id == asset_id, allocations.c.status == COMPLETED)
        .order_by(allocations.c.closed_at, allocations.c.id)
    )
    return session.execute(query).all()


def set_disputes(session: Session, *, disputes: dict[int, str | None]) -> None:
    """Mark copies disputed (with why) or agreeing (None)."""
    for allocation_id, dispute in sorted(disputes.items()):
        session.execute(
            update(allocations).where(allocations.c.id == allocation_id).values(dispute=dispute)
        )


def failing_nodes(session: Session, *, asset_id: str, since: datetime | None) -> list[str]:
    """Nodes that reported a failure on the asset that counts against it (not a node-side
    one), since `since` when given."""
    query = (
        select(allocations.c.node_id)
        .where(
            allocations.c.asset_id == asset_id,
            allocations.c.status == FAILED,
            allocations.c.reason_code.not_in(NODE_SIDE_CODES),
        )
        .distinct()
    )
    if since is not None:
        query = query.where(allocations.c.closed_at >= since)
    return sorted(session.execute(query).scalars())
