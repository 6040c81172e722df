"""Allocation reads: leases, holdings and histories, for the API, the dashboard and
maintenance. The race-prone statements are in `claims`, the picking in `picks`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    func,
    select,
)
from sqlalchemy.orm import Session

from priorizer.allocation.models import (
    ALLOCATED,
    COMPLETED,
    EXPIRED,
    FAILED,
    HOLDING,
    Allocation,
)
from priorizer.catalog.models import Asset
from priorizer.queue.sql import queue_order

assets = cast(Table, Asset.__table__)


allocations = cast(Table, Allocation.__table__)


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


def id_parameter(session: Session, ids: Sequence[str]) -> Any:
    return list(ids) if session.get_bind().dialect.name == "postgresql" else json.dumps(ids)


# Magnet links of one asset's copies handed to a node (newest first): enough peers to try.
MAGNETS_PER_ASSET = 10


def node_open_leases(session: Session, *, node_id: str) -> Sequence[Any]:
    """The node's open leases with their assets' details, oldest first."""
    query = (
        select(
            *CLAIM_COLUMNS,
            allocations.c.id.label("allocation_id"),
            allocations.c.expires_at,
            allocations.c.reserved_mb,
        )
        .join(assets, assets.c.id == allocations.c.asset_id)
        .where(allocations.c.node_id == node_id, allocations.c.status == ALLOCATED)
        .order_by(allocations.c.id)
    )
    return session.execute(query).all()


def magnet_links(session: Session, *, asset_ids: Sequence[str]) -> dict[str, list[str]]:
    """The magnet links nodes reported with their copies of these assets, newest first."""
    query = (
        select(allocations.c.asset_id, allocations.c.magnet_link)
        .where(
            allocations.c.asset_id.in_(asset_ids),
            allocations.c.status == COMPLETED,
            allocations.c.magnet_link.is_not(None),
        )
        .order_by(allocations.c.id.desc())
    )
    found: dict[str, list[str]] = {}
    for asset_id, link in session.execute(query):
        links = found.setdefault(asset_id, [])
        if len(links) < MAGNETS_PER_ASSET and link not in links:
            links.append(link)
    return found


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


def copies_on(session: Session, *, node_id: str) -> list[tuple[str, bool]]:
    """Assets the node holds a copy of, each with whether that copy is disputed."""
    query = select(allocations.c.asset_id, allocations.c.dispute.is_not(None)).where(
        allocations.c.node_id == node_id, allocations.c.status == COMPLETED
    )
    return [(asset_id, bool(disputed)) for asset_id, disputed in session.execute(query)]


def nodes_with_expiries(session: Session, *, since: datetime) -> list[str]:
    """Nodes with a lease that was due to expire after `since` and did."""
    query = (
        select(allocations.c.node_id)
        .where(allocations.c.status == EXPIRED, allocations.c.expires_at > since)
        .distinct()
    )
    return sorted(session.execute(query).scalars())


def expired_counts(session: Session, *, node_ids: Sequence[str]) -> dict[str, int]:
    """All expired leases of each node listed (an index-only count per node)."""
    counts: dict[str, int] = {}
    for start in range(0, len(node_ids), 500):
        chunk = node_ids[start : start + 500]
        query = (
            select(allocations.c.node_id, func.count())
            .where(allocations.c.node_id.in_(chunk), allocations.c.status == EXPIRED)
            .group_by(allocations.c.node_id)
        )
        counts.update({node_id: n for node_id, n in session.execute(query)})
    return counts


def turnarounds(session: Session, *, node_id: str, limit: int) -> list[float]:
    """Seconds from lease to copy, for the node's latest completions."""
    query = (
        select(allocations.c.allocated_at, allocations.c.closed_at)
        .where(allocations.c.node_id == node_id, allocations.c.status == COMPLETED)
        .order_by(allocations.c.id.desc())
        .limit(limit)
    )
    return [
        (closed - allocated).total_seconds()
        for allocated, closed in session.execute(query)
        if closed is not None
    ]


def open_totals(session: Session) -> tuple[int, float]:
    """Open leases everywhere, and the MiB they reserve."""
    query = select(func.count(), func.coalesce(func.sum(allocations.c.reserved_mb), 0.0)).where(
        allocations.c.status == ALLOCATED
    )
    count, reserved = session.execute(query).one()
    return int(count), float(reserved)


def last_allocation_id(session: Session) -> int:
    return session.execute(select(func.coalesce(func.max(allocations.c.id), 0))).scalar_one()


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
        select(func.max(allocations.c.id))
        .where(allocations.c.asset_id.in_(asset_ids), allocations.c.status == FAILED)
        .group_by(allocations.c.asset_id)
    )
    query = select(
        allocations.c.asset_id, allocations.c.node_id, allocations.c.note, allocations.c.closed_at
    ).where(allocations.c.id.in_(newest))
    return {row.asset_id: row for row in session.execute(query)}


def reported_checksums(
    session: Session, *, asset_ids: Sequence[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """The checksums nodes reported with their copies of each listed asset: (checksum, the
    nodes that reported it), the most reported first."""
    query = (
        select(allocations.c.asset_id, allocations.c.checksum_sha256, allocations.c.node_id)
        .where(
            allocations.c.asset_id.in_(asset_ids),
            allocations.c.status == COMPLETED,
            allocations.c.checksum_sha256.is_not(None),
        )
        .order_by(allocations.c.asset_id, allocations.c.node_id)
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
    query = select(allocations.c.status).where(
        allocations.c.asset_id == asset_id,
        allocations.c.node_id == node_id,
        allocations.c.status.in_(HOLDING),
    )
    return session.execute(query.limit(1)).scalar_one_or_none()


def node_summaries(session: Session, *, node_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Open leases, reserved space and copies for each node listed."""
    query = (
        select(
            allocations.c.node_id,
            allocations.c.status,
            func.count(),
            func.coalesce(func.sum(allocations.c.reserved_mb), 0.0),
        )
        .where(allocations.c.node_id.in_(node_ids), allocations.c.status.in_(HOLDING))
        .group_by(allocations.c.node_id, allocations.c.status)
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
            select(allocations)
            .where(allocations.c.status.in_(HOLDING), allocations.c.id > after)
            .order_by(allocations.c.id)
            .limit(batch)
        )
        rows = session.execute(query).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].id
