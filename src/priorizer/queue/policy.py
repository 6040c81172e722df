"""The queue core: the rules that place an asset in the queue, as pure functions (no I/O).
Every domain may import this package; it imports none. Documented in docs/allocation.md.

- Budget: a node's budget is the free space it reports minus what its open leases reserve.
- Rank: an asset's place in the queue is its effective priority minus `copy_penalty` for every
  holder it already has (`counted_holders`: open leases plus completed copies, disputed copies
  aside), minus a size penalty for files larger than `size_penalty_from_mb`: `size_penalty` per
  doubling past it, at most `size_penalty_max`. With the defaults (3; 2 per doubling past 1 GiB,
  at most 4), the second copy of a priority-10 asset competes with first copies of priority-7
  assets, and a 5 GB priority-10 file with priority-6 files.
- An asset that reached the replication target, or may not be handed out (`may_hand_out`: it is
  active, or gone from its origin while a copy's magnet link can serve it), has no rank.
- Within one rank, the smallest file goes first (`smallest_first`; the most files, so the most
  priority, per byte), or, with `smallest_first` off, the largest that still fits (first-fit
  decreasing: a node's disk fills in one request, with few leases); then by id.
- Unknown sizes count as `unknown_size_mb` (UNKNOWN_SIZE_MB, default 1 GiB) in every budget.
- A node never holds two open leases or copies of one asset (also a unique index).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from priorizer.queue.states import ASSET_ACTIVE, ASSET_GONE

if TYPE_CHECKING:
    from priorizer.config import Settings

MB_PER_GB = 1024.0
PRIORITY_MIN, PRIORITY_MAX = 1, 10
# Size classes past `size_penalty_from_mb` that can differ in penalty: 2^40 times the threshold
# is beyond any file, so a longer list would change nothing.
MAX_SIZE_CLASSES = 40


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """The settings ranks and the queue order follow. The size rule's fields default to off,
    which is how ranks were computed before it existed (a stored policy without them)."""

    replication_target: int
    copy_penalty: float
    unknown_size_mb: float
    size_penalty: float = 0.0
    size_penalty_from_mb: float = 1024.0
    size_penalty_max: float = 0.0
    smallest_first: bool = False

    def size_classes(self) -> int:
        """How many doublings past the threshold still add to the penalty (0: no size rule)."""
        if self.size_penalty <= 0 or self.size_penalty_max <= 0:
            return 0
        return min(MAX_SIZE_CLASSES, math.ceil(self.size_penalty_max / self.size_penalty))

    def size_penalties(self) -> list[tuple[float, float]]:
        """(larger than MiB, penalty) from the largest class down, penalties above zero only."""
        top = self.size_classes()
        return [
            (
                self.size_penalty_from_mb * 2.0 ** (k - 1),
                min(self.size_penalty * k, self.size_penalty_max),
            )
            for k in range(top, 0, -1)
        ]


def effective_size_mb(size_mb: float | None, unknown_size_mb: float) -> float:
    """What an asset counts for in a budget: its size, or the assumed size when unknown."""
    return unknown_size_mb if size_mb is None else size_mb


def may_hand_out(state: str, has_magnet_link: bool) -> bool:
    """Active assets are handed out; so are gone ones (their origin answers 404 or 410) while
    some copy was reported with a magnet link, since a node can fetch it from that peer."""
    return state == ASSET_ACTIVE or (state == ASSET_GONE and has_magnet_link)


def node_budget_mb(free_space_gb: float, reserved_mb: float) -> float:
    """Rule 1: reported free space minus what the node's open leases already reserve."""
    return max(0.0, free_space_gb * MB_PER_GB - reserved_mb)


def counted_holders(copies: Any, disputed_copies: Any, leases: Any) -> Any:
    """The holders that count toward the target: open leases and completed copies, except the
    disputed ones (`allocation.evidence.settle`). Numbers or SQL columns alike: every rank,
    computed here or by the database, uses this."""
    return copies - disputed_copies + leases


def size_penalty(budget_mb: float, policy: QueuePolicy) -> float:
    """What a file's size costs it in rank: nothing up to `size_penalty_from_mb`, then
    `size_penalty` for each doubling begun past it, at most `size_penalty_max`."""
    for larger_than, penalty in policy.size_penalties():
        if budget_mb > larger_than:
            return penalty
    return 0.0


def rank(
    priority: int, holders: int, is_active: bool, policy: QueuePolicy, *, budget_mb: float
) -> float | None:
    """Rule 2 and 3: the queue position of an asset, or None when it must not be handed out."""
    if not is_active or holders >= policy.replication_target:
        return None
    return float(priority - policy.copy_penalty * holders) - size_penalty(budget_mb, policy)


class QueuedAsset(Protocol):
    """What an asset's rank is computed from (a catalog row, `catalog.models.Asset`)."""

    priority: int
    copies: int
    disputed_copies: int
    leases: int
    state: str
    has_magnet_link: bool
    budget_mb: float


def asset_rank(asset: QueuedAsset, policy: QueuePolicy) -> float | None:
    """`rank` of an asset as loaded: what code that changed it in Python sets (the SQL
    statements set `queue.sql.rank_of`, the same rule)."""
    holders = counted_holders(asset.copies, asset.disputed_copies, asset.leases)
    handed_out = may_hand_out(asset.state, asset.has_magnet_link)
    return rank(asset.priority, holders, handed_out, policy, budget_mb=asset.budget_mb)


def rank_levels(policy: QueuePolicy) -> list[float]:
    """Every rank an asset can have, highest first: priorities are whole numbers from 1 to 10,
    holders from 0 to target - 1 and size penalties a few steps, so the queue has a small,
    known set of levels."""
    penalties = {0.0, *(penalty for _, penalty in policy.size_penalties())}
    levels = {
        float(priority - policy.copy_penalty * holders) - penalty
        for priority in range(PRIORITY_MIN, PRIORITY_MAX + 1)
        for holders in range(policy.replication_target)
        for penalty in penalties
    }
    return sorted(levels, reverse=True)


class Candidate(Protocol):
    @property
    def budget_mb(self) -> float: ...


C = TypeVar("C", bound=Candidate)


def fit(candidates: Iterable[C], remaining_mb: float, slots: int) -> list[C]:
    """Take candidates in the order given while they fit the remaining budget and slots."""
    chosen: list[C] = []
    for candidate in candidates:
        if len(chosen) >= slots:
            break
        if candidate.budget_mb <= remaining_mb:
            chosen.append(candidate)
            remaining_mb -= candidate.budget_mb
    return chosen


def total_mb(candidates: Sequence[Candidate]) -> float:
    return sum(c.budget_mb for c in candidates)


def queue_policy(settings: Settings) -> QueuePolicy:
    """The queue policy the settings give."""
    return QueuePolicy(
        replication_target=settings.replication_target,
        copy_penalty=settings.copy_penalty,
        unknown_size_mb=settings.unknown_size_mb,
        size_penalty=settings.size_penalty,
        size_penalty_from_mb=settings.size_penalty_from_mb,
        size_penalty_max=settings.size_penalty_max,
        smallest_first=settings.fill_order == "smallest",
    )
