"""A lease's life after /allocate: renewed, completed into a copy, failed, expired, orphaned.

Lock order, the same everywhere on PostgreSQL so that writers never deadlock: the node's row
first, then allocation rows, then asset rows in id order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from priorizer import metrics
from priorizer.allocation import claims, copies, evidence, expiries, repo
from priorizer.allocation.models import (
    ALLOCATED,
    COMPLETED,
    EXPIRED,
    FAILED,
    RELEASED,
    WITHDRAWN_NOTE,
    Allocation,
)
from priorizer.catalog import repo as catalog_repo
from priorizer.catalog.models import ASSET_ACTIVE, ASSET_UNREACHABLE, Asset
from priorizer.errors import Conflict, NotFound
from priorizer.node import service as node_service
from priorizer.node import standing
from priorizer.node.models import Node
from priorizer.node.standing import CapLimits, Standing
from priorizer.queue.policy import QueuePolicy, asset_rank

# Due leases closed by one allocation request before it picks (see `expire_due`).
EXPIRE_PER_REQUEST = 200


# The note on copies their node reported damaged or gone (POST /discard).
DISCARDED_NOTE = "copy discarded by its node"


# Median turnaround over a node's latest completions.


MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Completion:
    allocation_id: int
    copies: int
    conflicting_copies: bool
    already_recorded: bool
    late: bool
    dispute: str | None
    disputed_copies: int
    unreachable: bool


@dataclass(frozen=True, slots=True)
class Discarded:
    allocation_id: int
    copies: int


@dataclass(frozen=True, slots=True)
class Failure:
    allocation_id: int
    failed_nodes: int
    unreachable: bool
    reason_code: str
    counts_against_asset: bool
    failure_weight: float


def _known_node(session: Session, node_id: str, now: datetime) -> Node:
    """The node, locked (first, see the lock order), marked as seen."""
    node = node_service.lock_node(session, node_id=node_id)
    if node is None:
        raise NotFound(f"no node {node_id!r}: it has never asked for work")
    node.last_seen_at = now
    return node


def _locked_asset(session: Session, asset_id: str) -> Asset:
    asset = catalog_repo.get(session, asset_id=asset_id, for_update=True)
    if asset is None:
        raise NotFound(f"no asset {asset_id!r}")
    return asset


def complete(
    session: Session,
    *,
    asset_id: str,
    node_id: str,
    checksum_sha256: str | None,
    magnet_link: str | None,
    size_mb: float | None,
    queue: QueuePolicy,
    limits: CapLimits,
    size_tolerance: float,
    failure_threshold: int,
    now: datetime,
    size_bytes: int | None = None,
) -> Completion:
    """The node's lease on the asset becomes a copy it holds, agreeing or disputed (`_settle`).

    A completion repeated (a retry) is answered as recorded, unless it reports another checksum.
    A completion that arrives after its lease expired, or after the server closed it because the
    asset was withdrawn, still records the copy: the node has the data.
    """
    node = _known_node(session, node_id, now)
    lease = repo.lease_of(session, asset_id=asset_id, node_id=node_id, status=ALLOCATED)
    late = False
    if lease is None:
        copy = repo.lease_of(
            session, asset_id=asset_id, node_id=node_id, status=COMPLETED, for_update=False
        )
        if copy is not None:
            return _repeated(session, copy, checksum_sha256)
        lease = repo.lease_of(
            session, asset_id=asset_id, node_id=node_id, status=EXPIRED
        ) or repo.lease_of(
            session, asset_id=asset_id, node_id=node_id, status=RELEASED, note=WITHDRAWN_NOTE
        )
        if lease is None:
            raise NotFound(f"node {node_id!r} holds no lease on asset {asset_id!r}")
        late = True
    copies.lock_copies(session, asset_id=asset_id)  # settling may rewrite them: before the asset
    asset = _locked_asset(session, asset_id)
    lease_was_expired = lease.status == EXPIRED
    lease.status, lease.closed_at = COMPLETED, now
    lease.checksum_sha256, lease.magnet_link = checksum_sha256, magnet_link
    if magnet_link is not None:
        asset.has_magnet_link = True
    if size_mb is None and size_bytes is not None:
        size_mb = max(size_bytes, 1) / MB
    lease.reported_size_mb = size_mb
    if not late:
        asset.leases -= 1
    if node.lost_at is None:  # a lost node's copies count again once maintenance sees it back
        asset.copies += 1
    set_standing(node, standing.after_completion(standing_of(node), limits))
    node.completions += 1
    if late and lease_was_expired:
        # Its expired leases are one fewer: keep the count `account_expirations` compares with
        # in step (an expiration finished late before any cycle charged it is forgiven).
        node.expirations = max(0, node.expirations - 1)
    disputes = _settle(session, asset, size_tolerance=size_tolerance, threshold=failure_threshold)
    if asset.size_bytes is None and size_bytes is not None and disputes[lease.id] is None:
        asset.size_bytes = size_bytes  # the exact size next nodes verify against
    asset.rank = asset_rank(asset, queue)
    metrics.tally(session, "completions")
    return _completion(asset, lease.id, disputes[lease.id], already_recorded=False, late=late)


def _completion(
    asset: Asset, allocation_id: int, dispute: str | None, *, already_recorded: bool, late: bool
) -> Completion:
    return Completion(
        allocation_id,
        asset.copies,
        asset.conflicting_copies,
        already_recorded,
        late,
        dispute,
        asset.disputed_copies,
        asset.state == ASSET_UNREACHABLE,
    )


def _repeated(session: Session, copy: Allocation, checksum_sha256: str | None) -> Completion:
    if checksum_sha256 is not None and copy.checksum_sha256 not in (None, checksum_sha256):
        raise Conflict(
            f"node {copy.node_id!r} already reported a copy of asset {copy.asset_id!r} "
            f"with checksum {copy.checksum_sha256}"
        )
    asset = _locked_asset(session, copy.asset_id)
    return _completion(asset, copy.id, copy.dispute, already_recorded=True, late=False)


def _settle(
    session: Session, asset: Asset, *, size_tolerance: float, threshold: int
) -> dict[int, str | None]:
    """Which of the asset's copies agree (`evidence.settle`), and what follows from it: the
    settled checksum, the disputed copies (which do not count as holders), the size when only
    nodes gave one, and, once too many copies were disputed, the asset unreachable. The
    dispute (or None) of each copy, by allocation id."""
    session.flush()  # the copy just completed is one of them
    found = copies.copies_of(session, asset_id=asset.id)
    nodes = node_service.reporters(session, node_ids=[c.node_id for c in found])
    known = None if asset.is_size_reported else asset.size_mb
    reports = [evidence.CopyReport(c.id, c.checksum_sha256, c.reported_size_mb) for c in found]
    verdict = evidence.settle(reports, known_size_mb=known, tolerance=size_tolerance)
    changed = {c.id: verdict.disputes[c.id] for c in found if c.dispute != verdict.disputes[c.id]}
    copies.set_disputes(session, disputes=changed)
    asset.checksum_sha256 = verdict.checksum_sha256
    asset.conflicting_copies = len({c.checksum_sha256 for c in found if c.checksum_sha256}) > 1
    if (not asset.size_mb or asset.is_size_reported) and verdict.size_mb is not None:
        asset.size_mb = asset.budget_mb = verdict.size_mb
        asset.is_size_reported = True
    disputed = [c for c in found if verdict.disputes[c.id] is not None]
    asset.disputed_copies = sum(1 for c in disputed if not nodes[c.node_id].is_lost)
    since = asset.failures_reset_at
    recent = {c.node_id for c in disputed if since is None or c.closed_at >= since}
    # Each of them holds this copy: proven if it completed another asset too.
    proven = sum(1 for node_id in recent if nodes[node_id].completions >= 2)
    if asset.state == ASSET_ACTIVE and evidence.threshold_reached(
        proven=proven, unproven=len(recent) - proven, threshold=threshold
    ):
        asset.state = ASSET_UNREACHABLE
        asset.state_reason = (
            f"{len(recent)} copies disagree with the others (checksum or size): the origin "
            "may serve different bytes each time"
        )
    return verdict.disputes


def fail(
    session: Session,
    *,
    asset_id: str,
    node_id: str,
    reason: str | None,
    reason_code: str | None,
    queue: QueuePolicy,
    limits: CapLimits,
    failure_threshold: int,
    now: datetime,
) -> Failure:
    """Close the node's lease as failed; the asset returns to the queue, or, once
    `failure_threshold` distinct nodes failed it (node-side codes aside), is marked
    unreachable."""
    node = _known_node(session, node_id, now)
    lease = repo.lease_of(session, asset_id=asset_id, node_id=node_id, status=ALLOCATED)
    if lease is None:
        raise NotFound(f"node {node_id!r} holds no open lease on asset {asset_id!r}")
    code = evidence.failure_code(reason_code)
    lease.status, lease.closed_at, lease.note, lease.reason_code = FAILED, now, reason, code
    session.flush()
    asset = _locked_asset(session, asset_id)
    asset.leases -= 1
    weight = _weigh_failures(session, asset, threshold=failure_threshold)
    asset.rank = asset_rank(asset, queue)
    if evidence.costs_node_standing(code):
        set_standing(node, standing.after_failure(standing_of(node), limits))
    node.failures += 1
    node.last_failed_at = now
    metrics.tally(session, "failures")
    return Failure(
        lease.id,
        asset.failed_nodes,
        asset.state == ASSET_UNREACHABLE,
        code,
        evidence.counts_against_asset(code),
        weight,
    )


def _weigh_failures(session: Session, asset: Asset, *, threshold: int) -> float:
    """Count the distinct nodes whose failures count against the asset since it was last
    reinstated; once they weigh `threshold` (a node with no completed copy weighs a third:
    `evidence.threshold_reached`), it is unreachable. What they weigh."""
    node_ids = copies.failing_nodes(session, asset_id=asset.id, since=asset.failures_reset_at)
    nodes = node_service.reporters(session, node_ids=node_ids)
    proven = sum(1 for node_id in node_ids if nodes[node_id].completions > 0)
    unproven = len(node_ids) - proven
    asset.failed_nodes = len(node_ids)
    if asset.state == ASSET_ACTIVE and evidence.threshold_reached(
        proven=proven, unproven=unproven, threshold=threshold
    ):
        asset.state = ASSET_UNREACHABLE
        asset.state_reason = (
            f"failed by {len(node_ids)} nodes ({proven} with a record, {unproven} without)"
        )
    return evidence.weight(proven=proven, unproven=unproven)


def discard(
    session: Session,
    *,
    asset_id: str,
    node_id: str,
    reason: str,
    queue: QueuePolicy,
    size_tolerance: float,
    failure_threshold: int,
    now: datetime,
) -> Discarded:
    """The node no longer holds a good copy (it found it damaged, or lost it): the copy stops
    counting and the asset returns to the queue. The node may be handed it again. The copies
    left are settled again: the discarded one may have been the disputed one, or the majority."""
    node = _known_node(session, node_id, now)
    copy = repo.lease_of(session, asset_id=asset_id, node_id=node_id, status=COMPLETED)
    if copy is None:
        raise NotFound(f"node {node_id!r} holds no copy of asset {asset_id!r}")
    copies.lock_copies(session, asset_id=asset_id)
    copy.status, copy.closed_at, copy.note = RELEASED, now, f"{DISCARDED_NOTE}: {reason}"
    copy.dispute = None
    asset = _locked_asset(session, asset_id)
    if node.lost_at is None:  # a lost node's copies were not counted
        asset.copies -= 1
    _settle(session, asset, size_tolerance=size_tolerance, threshold=failure_threshold)
    asset.rank = asset_rank(asset, queue)
    return Discarded(copy.id, asset.copies)


def renew(
    session: Session,
    *,
    node_id: str,
    asset_ids: Sequence[str] | None,
    lease_seconds: float,
    now: datetime,
) -> tuple[list[str], datetime]:
    """Extend the node's open leases (all, or those on `asset_ids`): the assets renewed and
    their new expiry. A lease already past its expiry is not renewed: it has expired."""
    _known_node(session, node_id, now)
    expires_at = now + timedelta(seconds=lease_seconds)
    renewed = claims.renew(
        session, node_id=node_id, asset_ids=asset_ids, now=now, expires_at=expires_at
    )
    metrics.tally(session, "renewals", len(renewed))
    return renewed, expires_at


def expire_due(
    session: Session, *, queue: QueuePolicy, now: datetime, limit: int, node_id: str | None = None
) -> int:
    """Expire leases past their expiry (all of `node_id`'s, or up to `limit` of any node's);
    their assets return to the queue. The nodes' standing catches up at the next maintenance
    cycle (`account_expirations`), so this takes no node locks and may run in any request."""
    closed = expiries.expire_due(session, now=now, limit=limit, node_id=node_id)
    if closed:
        claims.drop_leases(session, counts=Counter(a for a, _ in closed), policy=queue)
        metrics.tally(session, "expirations", len(closed))
    return len(closed)


def close_orphans(session: Session, *, queue: QueuePolicy, now: datetime, limit: int) -> int:
    """Close the open leases on up to `limit` assets withdrawn from the catalog; the leases
    closed (at least `limit` when more assets may be left)."""
    closed = expiries.close_orphans(session, now=now, limit=limit)
    if closed:
        claims.drop_leases(session, counts=Counter(a for a, _ in closed), policy=queue)
    return len(closed)


def standing_of(node: Node) -> Standing:
    return Standing(node.lease_cap, node.consecutive_successes)


def set_standing(node: Node, new: Standing) -> None:
    node.lease_cap, node.consecutive_successes = new.cap, new.run
