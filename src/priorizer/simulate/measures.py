"""How well a fleet's disks hold a catalog: pure functions of the catalog and of how many live
copies each asset has (docs/simulate.md).

- coverage: the share of the catalog's priority mass (the sum of priorities) held by at least
  one node;
- top redundancy: the share of assets of priority 8 or more held by at least two nodes;
- the pooled one-copy upper bound: the coverage no allocation could beat with these disks, had
  the fleet one single disk of their total size and could split files (a fractional knapsack,
  filled by priority per MB); the best whole-file allocation is at or below it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

TOP_PRIORITY = 8  # "top" data: this priority or above
REDUNDANT_COPIES = 2  # held on this many nodes: redundant


@dataclass(frozen=True, slots=True)
class Item:
    """An asset as the measures see it: its size (MB, the assumed one when unknown)."""

    id: str
    size_mb: float
    priority: int


@dataclass(frozen=True, slots=True)
class PriorityRow:
    priority: int
    assets: int
    held: int  # with at least one copy
    at_target: int  # with the replication target's copies
    mb: float
    held_mb: float  # of the assets with at least one copy


def priority_mass(items: Iterable[Item]) -> int:
    return sum(item.priority for item in items)


def coverage(items: Sequence[Item], copies: Mapping[str, int]) -> float:
    """Share of the priority mass held by at least one node (1.0 for an empty catalog)."""
    total = priority_mass(items)
    held = sum(item.priority for item in items if copies.get(item.id, 0) > 0)
    return held / total if total else 1.0


def share_held(
    items: Iterable[Item], copies: Mapping[str, int], *, min_priority: int, min_copies: int
) -> float | None:
    """Share of the assets of `min_priority` or more held by `min_copies` nodes or more;
    None when there are no such assets."""
    top = [item for item in items if item.priority >= min_priority]
    if not top:
        return None
    return sum(copies.get(item.id, 0) >= min_copies for item in top) / len(top)


def top_redundancy(items: Sequence[Item], copies: Mapping[str, int]) -> float | None:
    return share_held(items, copies, min_priority=TOP_PRIORITY, min_copies=REDUNDANT_COPIES)


def pooled_upper_bound(items: Sequence[Item], capacity_mb: float) -> float:
    """The best one-copy coverage of all disks pooled into one, files divisible: take assets by
    priority per MB, the last one in part (no allocation of whole files to separate disks can
    hold more priority mass)."""
    total = priority_mass(items)
    if not total:
        return 1.0
    left, held = max(0.0, capacity_mb), 0.0
    for item in sorted(items, key=lambda item: (-_density(item), item.id)):
        if item.size_mb <= left:
            left -= item.size_mb
            held += item.priority
        else:
            held += item.priority * left / item.size_mb
            break
    return min(1.0, held / total)


def _density(item: Item) -> float:
    return item.priority / item.size_mb if item.size_mb > 0 else float("inf")


def per_priority(
    items: Iterable[Item], copies: Mapping[str, int], *, target: int
) -> list[PriorityRow]:
    """Assets and MB per priority, highest first: in all, held once, at the target."""
    rows: dict[int, list[float]] = {}
    for item in items:
        n = copies.get(item.id, 0)
        row = rows.setdefault(item.priority, [0, 0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += n > 0
        row[2] += n >= target
        row[3] += item.size_mb
        row[4] += item.size_mb if n > 0 else 0.0
    return [
        PriorityRow(p, int(r[0]), int(r[1]), int(r[2]), r[3], r[4])
        for p, r in sorted(rows.items(), reverse=True)
    ]


def copies_histogram(items: Iterable[Item], copies: Mapping[str, int]) -> dict[int, int]:
    """How many assets have 0, 1, 2, ... live copies."""
    counts = Counter(copies.get(item.id, 0) for item in items)
    return dict(sorted(counts.items()))


def held_mb(items: Iterable[Item], copies: Mapping[str, int]) -> float:
    """Disk space the live copies take, all nodes together."""
    return sum(item.size_mb * copies.get(item.id, 0) for item in items)


def coverable_top(items: Sequence[Item], capacities_mb: Sequence[float]) -> list[str]:
    """The assets of the catalog's highest priority that fit the fleet's largest disk: those a
    campaign can cover, whose first copies time-to-cover waits for."""
    if not items or not capacities_mb:
        return []
    top = max(item.priority for item in items)
    largest = max(capacities_mb)
    return [item.id for item in items if item.priority == top and item.size_mb <= largest]


def all_held(ids: Iterable[str], copies: Mapping[str, int], *, at_least: int = 1) -> bool:
    return all(copies.get(asset_id, 0) >= at_least for asset_id in ids)


def summary(
    items: Sequence[Item], copies: Mapping[str, int], *, capacity_mb: float, target: int
) -> dict[str, float | int | None]:
    """The headline figures of one moment of a campaign."""
    used = held_mb(items, copies)
    return {
        "coverage": coverage(items, copies),
        "top_redundancy": top_redundancy(items, copies),
        "top_at_target": share_held(items, copies, min_priority=TOP_PRIORITY, min_copies=target),
        "upper_bound": pooled_upper_bound(items, capacity_mb),
        "assets": len(items),
        "assets_held": sum(copies.get(item.id, 0) > 0 for item in items),
        "copies": sum(copies.get(item.id, 0) for item in items),
        "held_mb": used,
        "capacity_mb": capacity_mb,
        "disk_used": used / capacity_mb if capacity_mb > 0 else None,
    }
