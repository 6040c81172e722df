"""What a node's record does to its leases and copies: expirations charged to its standing
(`node.standing`), copies set aside while it is lost and restored when it returns."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from priorizer.allocation import claims, repo
from priorizer.allocation.lifecycle import set_standing, standing_of
from priorizer.node import repo as node_repo
from priorizer.node import service as node_service
from priorizer.node import standing
from priorizer.node.models import Node
from priorizer.node.standing import CapLimits
from priorizer.queue.policy import QueuePolicy


def account_expirations(
    session: Session, *, node_ids: Sequence[str], limits: CapLimits
) -> dict[str, int]:
    """Bring these nodes' standing up to date with their expired leases: each node with
    expirations it was not yet charged for has its cap halved, once, and its run of successes
    ended. Idempotent: a node's stored count is compared with its expired leases."""
    # Lock the nodes first (in id order), then count: a late completion cannot slip between.
    locked = [node_service.lock_node(session, node_id=node_id) for node_id in sorted(node_ids)]
    found = [node for node in locked if node is not None]
    counts = repo.expired_counts(session, node_ids=[node.id for node in found])
    charged: dict[str, int] = {}
    for node in found:
        node_id = node.id
        new = counts.get(node_id, 0) - node.expirations
        if new <= 0:
            continue
        set_standing(node, standing.after_expirations(standing_of(node), limits))
        node.expirations += new
        charged[node_id] = new
    return charged


TURNAROUND_SAMPLE = 200


def node_standing(session: Session, *, node: Node, limits: CapLimits) -> dict[str, object]:
    """What a node did and may do: counters, lease cap, median turnaround."""
    times = repo.turnarounds(session, node_id=node.id, limit=TURNAROUND_SAMPLE)
    return {
        "completions": node.completions,
        "failures": node.failures,
        "expirations": node.expirations,
        "releases": node.releases,
        "consecutive_successes": node.consecutive_successes,
        "lease_cap": limits.clamp(node.lease_cap),
        "median_turnaround_seconds": statistics.median(times) if times else None,
        "lost": node.lost_at is not None,
        "lost_at": node.lost_at,
    }


def mark_lost_nodes(
    session: Session, *, queue: QueuePolicy, seen_before: datetime, now: datetime
) -> tuple[int, int]:
    """Nodes unseen since `seen_before` are lost: their copies stop counting toward the
    target, so those assets are handed out again. (nodes, copies) affected."""
    freed: list[tuple[str, bool]] = []
    lost = 0
    for node_id in node_repo.newly_lost(session, seen_before=seen_before):
        # Checked again as it is written: a request from the node may have come in since.
        if node_repo.mark_lost(session, node_id=node_id, seen_before=seen_before, now=now):
            lost += 1
            freed += repo.copies_on(session, node_id=node_id)
    claims.change_copies(session, counts=_copy_counts(freed, sign=-1), policy=queue)
    return lost, len(freed)


def _copy_counts(held: Sequence[tuple[str, bool]], *, sign: int) -> dict[str, tuple[int, int]]:
    """(copies, disputed copies) per asset, times `sign`: the counters' change."""
    copies_of: Counter[str] = Counter(asset_id for asset_id, _ in held)
    disputed: Counter[str] = Counter(asset_id for asset_id, is_disputed in held if is_disputed)
    return {a: (sign * n, sign * disputed[a]) for a, n in copies_of.items()}


def restore_returned_nodes(session: Session, *, queue: QueuePolicy) -> tuple[int, int]:
    """Lost nodes seen again count their copies again (a lost node's new copies were not
    counted meanwhile: see `complete`)."""
    restored: list[tuple[str, bool]] = []
    back = node_repo.returned(session)
    for node_id in back:
        node_repo.clear_lost(session, node_id=node_id)
        restored += repo.copies_on(session, node_id=node_id)
    claims.change_copies(session, counts=_copy_counts(restored, sign=1), policy=queue)
    return len(back), len(restored)
