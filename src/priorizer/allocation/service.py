"""Allocation use cases: hand out work, take it back, show the queue."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from priorizer import metrics
from priorizer.allocation import claims, lifecycle, picks, repo
from priorizer.allocation.models import ALLOCATED, COMPLETED, RELEASED, Allocation
from priorizer.errors import Invalid, NotFound
from priorizer.node import service as node_service
from priorizer.node.service import Seen
from priorizer.node.standing import CapLimits
from priorizer.queue import policy
from priorizer.queue.policy import QueuePolicy
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
    if max_assets <= 0 or state.smallest_mb is None:
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
            smallest=state.smallest_mb,
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
    smallest: float,
    queue: QueuePolicy,
    failed_since: datetime | None,
    skip: set[str],
) -> list[Any]:
    """Choose, level by level, the assets that fit what is left of the budget in queue order,
    passing over the ids in `skip`; none once it is below `smallest` (what the smallest asset
    in the queue counts for). Every round finishes a level or picks an asset. On PostgreSQL
    the database does this in one call, locking what it picks (`picks.pick_locked`)."""
    if picks.picks_in_database(session):
        return picks.pick_locked(
            session,
            levels=policy.rank_levels(queue),
            max_mb=remaining,
            slots=slots,
            node_id=node_id,
            failed_since=failed_since,
            smallest=smallest,
            skip=sorted(skip),
            smallest_first=queue.smallest_first,
        )
    levels = policy.rank_levels(queue)
    picked: list[Any] = []
    passed = set(skip)
    for _ in range(len(levels) + slots + 1):
        if not levels or len(picked) >= slots or remaining < smallest:
            break
        batch = levels[:LEVELS_PER_QUERY]
        # Read past the rows passed over: taken by this request, or lost to another.
        limit = slots - len(picked) + len(passed)
        rows = picks.candidates(
            session,
            levels=batch,
            max_mb=remaining,
            node_id=node_id,
            failed_since=failed_since,
            limit=limit,
            smallest_first=queue.smallest_first,
        )
        if not rows:
            below = picks.next_rank(session, below=batch[-1])
            levels = [] if below is None else [below, *(x for x in levels if x < below)]
            continue
        finished = 0
        for level in batch:
            level_rows = [row for row in rows if row.rank == level]
            fresh = [row for row in level_rows if row.id not in passed]
            chosen = policy.fit(fresh, remaining, slots - len(picked))
            picked += chosen
            passed.update(row.id for row in chosen)
            remaining -= policy.total_mb(chosen)
            if len(level_rows) == limit:
                break  # the level may hold more that fit what is left: read it again
            finished += 1
        levels = levels[finished:]
    return picked


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


@dataclass(frozen=True, slots=True)
class Holding:
    """A lease or copy from another deployment's records."""

    asset_id: str
    node_id: str
    status: str  # ALLOCATED or COMPLETED
    allocated_at: datetime | None = None
    expires_at: datetime | None = None


def import_holdings(
    session: Session,
    *,
    records: Sequence[Holding],
    queue: QueuePolicy,
    lease_seconds: float,
    now: datetime,
) -> tuple[int, int]:
    """Load leases and copies of another deployment: (recorded, already known).

    A copy beats a lease of the same asset on the same node, in the records as in the
    database (the lease then becomes that copy). Every asset must already be in the catalog;
    otherwise nothing is written."""
    wanted: dict[tuple[str, str], Holding] = {}
    for record in records:
        key = (record.asset_id, record.node_id)
        if key not in wanted or record.status == COMPLETED:
            wanted[key] = record
    budgets = repo.asset_budgets(session, asset_ids=sorted({key[0] for key in wanted}))
    unknown = sorted({key[0] for key in wanted} - budgets.keys())
    if unknown:
        raise Invalid(f"allocations name assets not in the catalog: {', '.join(unknown[:10])}")
    node_service.ensure_nodes(session, node_ids=sorted({key[1] for key in wanted}), now=now)
    added: list[dict[str, Any]] = []
    new_leases: Counter[str] = Counter()
    new_copies: Counter[str] = Counter()
    for (asset_id, node_id), record in wanted.items():  # file order: ids follow it
        held = repo.holding_status(session, asset_id=asset_id, node_id=node_id)
        if held == ALLOCATED and record.status == COMPLETED:
            claims.close_lease(
                session, asset_id=asset_id, node_id=node_id, status=COMPLETED, now=now
            )
            new_leases[asset_id] -= 1
            new_copies[asset_id] += 1
        elif held is None:
            added.append(_imported_row(record, budgets[asset_id], lease_seconds, now))
            (new_copies if record.status == COMPLETED else new_leases)[asset_id] += 1
    if added:
        claims.insert_leases(session, added)
    for asset_id in sorted(new_leases.keys() | new_copies.keys()):
        claims.add_holders(
            session,
            asset_id=asset_id,
            new_leases=new_leases[asset_id],
            new_copies=new_copies[asset_id],
            policy=queue,
        )
    recorded = sum(new_copies.values()) + sum(n for n in new_leases.values() if n > 0)
    return recorded, len(records) - recorded


def _imported_row(
    record: Holding, reserved_mb: float, lease_seconds: float, now: datetime
) -> dict[str, Any]:
    start = record.allocated_at or now
    return {
        "asset_id": record.asset_id,
        "node_id": record.node_id,
        "status": record.status,
        "reserved_mb": reserved_mb,
        "allocated_at": start,
        "renewed_at": start,
        "expires_at": record.expires_at or start + timedelta(seconds=lease_seconds),
        "closed_at": now if record.status == COMPLETED else None,
    }


def iterate_holdings(session: Session) -> Iterator[dict[str, Any]]:
    """Open leases and copies in the seed's `allocations.json` record shape."""
    for row in repo.iterate_holdings(session):
        yield {
            "asset_id": row.asset_id,
            "node_id": row.node_id,
            "status": row.status,
            "allocated_at": row.allocated_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
        }


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
