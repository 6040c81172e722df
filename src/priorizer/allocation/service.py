"""Allocation use cases: hand out work, take it back, show the queue."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from priorizer import metrics
from priorizer.allocation import claims, lifecycle, picks, repo
from priorizer.allocation.models import RELEASED, Allocation
from priorizer.errors import NotFound
from priorizer.node import service as node_service
from priorizer.node.service import Seen
from priorizer.node.standing import CapLimits
from priorizer.queue import policy
from priorizer.queue.policy import QueuePolicy
from priorizer.queue.walk import walk
from priorizer.system import repo as system_repo

log = logging.getLogger(__name__)


# Rank levels read per statement (the default policy has 13 in all): few, since the top levels
# usually fill a request and every level read costs rows fetched.
LEVELS_PER_QUERY = 2


# Picking again, past the assets lost to concurrent claims (PostgreSQL), at most this often.
MAX_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class Lease:
    asset: dict[str, Any]
    allocation_id: int
    node_id: str
    expires_at: datetime
    reserved_mb: float


def allocate(
    session: Session,
    *,
    node_id: str,
    free_space_gb: float,
    queue: QueuePolicy,
    max_assets: int,
    limits: CapLimits,
    lease_seconds: float,
    failed_retry_seconds: float,
    now: datetime,
    client_address: str | None = None,
    unproven_address_cap: int = 0,
) -> list[Lease]:
    """Lease to `node_id` the highest-ranked assets that fit its budget (rules 1-6), no more
    than its lease cap allows it to hold open (`node.standing`), and none it failed in the
    last `failed_retry_seconds`. A node with no completed copy asking from `client_address`
    shares `unproven_address_cap` open leases (when not 0) with the others like it there."""
    seen = node_service.record_seen(
        session, node_id=node_id, free_space_mb=free_space_gb * policy.MB_PER_GB, now=now
    )
    state = picks.request_state(session, node_id=node_id, now=now)
    # Leases past their expiry never block, whether or not maintenance runs: before picking,
    # close all of this node's that are due (its budget and cap must not count them, and
    # `state` does not), and some of anyone's (their assets return to the queue). The state
    # says whether any are due: usually none, and then no statement is spent on them.
    if state.node_due:
        lifecycle.expire_due(session, queue=queue, now=now, limit=0, node_id=node_id)
    if state.any_due and lifecycle.expire_due(
        session, queue=queue, now=now, limit=lifecycle.EXPIRE_PER_REQUEST
    ):
        state = picks.request_state(session, node_id=node_id, now=now)  # assets came back
    max_assets = min(max_assets, limits.clamp(seen.lease_cap) - state.open_count)
    unproven_address = client_address if seen.completions == 0 and unproven_address_cap else None
    if unproven_address is not None and max_assets > 0:
        claims.lock_address(session, address=unproven_address)
        held = claims.unproven_open(session, address=unproven_address, limit=unproven_address_cap)
        max_assets = min(max_assets, unproven_address_cap - held)
    if max_assets <= 0:
        return []
    remaining = policy.node_budget_mb(free_space_gb, state.reserved_mb)
    expires_at = now + timedelta(seconds=lease_seconds)
    failed_since = _failed_since(seen, now - timedelta(seconds=failed_retry_seconds))
    leases: list[Lease] = []
    lost: set[str] = set()
    for _ in range(MAX_ATTEMPTS):
        picked = _pick(
            session,
            node_id=node_id,
            remaining=remaining,
            slots=max_assets - len(leases),
            queue=queue,
            failed_since=failed_since,
            skip=lost,
        )
        if not picked:
            break
        won = claims.claim_leases(
            session,
            asset_ids=[row.id for row in picked],
            policy=queue,
            node_id=node_id,
            now=now,
            expires_at=expires_at,
            unproven_address=unproven_address,
        )
        leases += [
            Lease(row._asdict(), lease_id, node_id, expires_at, row.budget_mb)
            for row, lease_id in won.values()
        ]
        remaining -= sum(row.budget_mb for row, _ in won.values())
        if len(won) == len(picked):
            break
        # Another transaction changed some of these: pick again for what is left, past them.
        lost.update({row.id for row in picked} - won.keys())
    metrics.tally(session, "allocations", len(leases))
    add_sources(session, leases)
    return leases


def add_sources(session: Session, leases: Sequence[Lease]) -> None:
    """What a node verifies against and fetches from besides the origin: the settled checksum
    (none while copies disagree) and the magnet links of the copies reported. Read only for
    assets with copies: a first copy costs no query."""
    held = [lease.asset["id"] for lease in leases if lease.asset["copies"] > 0]
    links = repo.magnet_links(session, asset_ids=held) if held else {}
    for lease in leases:
        asset = lease.asset
        if asset["conflicting_copies"]:
            asset["checksum_sha256"] = None
        asset["magnet_links"] = links.get(asset["id"], [])


def _failed_since(seen: Seen, since: datetime) -> datetime | None:
    """Since when the node's failed assets are passed over; None when it failed nothing
    since then (most requests): no seeks for them at all."""
    failed_lately = seen.last_failed_at is not None and seen.last_failed_at > since
    return since if failed_lately else None


def _pick(
    session: Session,
    *,
    node_id: str,
    remaining: float,
    slots: int,
    queue: QueuePolicy,
    failed_since: datetime | None,
    skip: set[str],
) -> list[Any]:
    """Choose, level by level, the assets that fit what is left of the budget in queue order,
    passing over the ids in `skip`: the level walk (`queue.walk`) over this database's reads. On
    PostgreSQL the database walks the levels in one call, locking what it picks
    (`picks.pick_locked`)."""
    if picks.picks_in_database(session):
        return picks.pick_locked(
            session,
            levels=policy.rank_levels(queue),
            max_mb=remaining,
            slots=slots,
            node_id=node_id,
            failed_since=failed_since,
            skip=sorted(skip),
            smallest_first=queue.smallest_first,
        )
    return walk(
        policy.rank_levels(queue),
        remaining=remaining,
        slots=slots,
        skip=skip,
        read=lambda levels, max_mb, limit: picks.candidates(
            session,
            levels=levels,
            max_mb=max_mb,
            node_id=node_id,
            failed_since=failed_since,
            limit=limit,
            smallest_first=queue.smallest_first,
        ),
        next_below=lambda rank: picks.next_rank(session, below=rank),
        per_query=LEVELS_PER_QUERY,
        ascending=queue.smallest_first,
    )


def node_leases(session: Session, *, node_id: str) -> list[Lease]:
    """The node's open leases, as /allocate handed them out (a node restarting takes them up)."""
    node_service.get_node(session, node_id=node_id)
    leases = []
    for row in repo.node_open_leases(session, node_id=node_id):
        asset = row._asdict()
        lease_id, expires_at = asset.pop("allocation_id"), asset.pop("expires_at")
        leases.append(Lease(asset, lease_id, node_id, expires_at, asset.pop("reserved_mb")))
    add_sources(session, leases)
    return leases


def release_lease(
    session: Session, *, asset_id: str, node_id: str, queue: QueuePolicy, now: datetime
) -> None:
    """Close the node's open lease on the asset and put the asset back in the queue."""
    node = node_service.lock_node(session, node_id=node_id)  # first: see lifecycle's lock order
    if (
        node is None
        or claims.close_lease(session, asset_id=asset_id, node_id=node_id, status=RELEASED, now=now)
        is None
    ):
        raise NotFound(f"node {node_id!r} holds no open lease on asset {asset_id!r}")
    claims.drop_leases(session, counts={asset_id: 1}, policy=queue)
    node.last_seen_at = now
    metrics.tally(session, "releases")
    node.releases += 1


def apply_queue_policy(session: Session, *, queue: QueuePolicy) -> int:
    """Recompute every rank and budget size, after REPLICATION_TARGET, COPY_PENALTY or
    UNKNOWN_SIZE_MB changed. Run at start-up only when the stored policy differs."""
    return claims.recompute_ranks(session, policy=queue, unknown_size_mb=queue.unknown_size_mb)


def ranking(session: Session, *, limit: int, queue: QueuePolicy) -> list[dict[str, Any]]:
    rows = repo.ranking(session, limit=limit, smallest_first=queue.smallest_first)
    return [row._asdict() for row in rows]


def latest_leases(session: Session, *, limit: int) -> Sequence[Any]:
    """The newest leases, whatever became of them, each with its asset's name."""
    return repo.latest(session, limit=limit)


def list_allocations(
    session: Session,
    *,
    node_id: str | None = None,
    asset_id: str | None = None,
    status: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> Sequence[Allocation]:
    return repo.list_allocations(
        session, node_id=node_id, asset_id=asset_id, status=status, after=after, limit=limit
    )


def asset_holdings(session: Session, *, asset_id: str) -> Sequence[Allocation]:
    return repo.asset_holdings(session, asset_id=asset_id)


def asset_history(session: Session, *, asset_id: str, limit: int = 100) -> Sequence[Allocation]:
    return repo.asset_history(session, asset_id=asset_id, limit=limit)


def latest_failures(session: Session, *, asset_ids: Sequence[str]) -> dict[str, Any]:
    """Each listed asset's latest failed lease: the node, its reason and when."""
    return repo.latest_failures(session, asset_ids=asset_ids)


def reported_checksums(
    session: Session, *, asset_ids: Sequence[str]
) -> dict[str, list[tuple[str, list[str]]]]:
    """Each listed asset's checksums as its copies were reported, with the nodes behind each."""
    return repo.reported_checksums(session, asset_ids=asset_ids)


def node_summaries(session: Session, *, node_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return repo.node_summaries(session, node_ids=node_ids)


def count_open(session: Session) -> int:
    return repo.open_totals(session)[0]


QUEUE_POLICY_KEY = "queue_policy"


def ensure_queue_policy(session: Session, *, queue: QueuePolicy, now: datetime) -> bool:
    """Recompute ranks when the queue settings differ from those the ranks were computed with."""
    wanted = dataclasses.asdict(queue)
    if system_repo.get(session, key=QUEUE_POLICY_KEY) == wanted:
        return False
    count = apply_queue_policy(session, queue=queue)
    system_repo.put(session, key=QUEUE_POLICY_KEY, value=wanted, now=now)
    log.info("queue policy %s applied to %d assets", wanted, count)
    return True


def stored_queue_policy(session: Session) -> QueuePolicy | None:
    """The queue policy the stored ranks were computed with, if any."""
    value = system_repo.get(session, key=QUEUE_POLICY_KEY)
    return None if value is None else QueuePolicy(**value)
