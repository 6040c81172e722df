"""The level walk: how a request chooses what to lease, as a pure function over two reads.

The queue has a small, known set of rank levels (`policy.rank_levels`). A request walks them
from the highest, `per_query` levels a read, taking in each level, in queue order, the assets
that fit what is left of its budget (`policy.fit`), until its slots are full or no level is
left. A read returns at most `limit` rows of each level; a level that filled the read may
hold more that fit, so it is read again (past what was taken) — unless its sizes ascend
(smallest first) and what is left of the budget is less than the last size read, so that
nothing further in it fits (which is always so when slots are left: a full read holds more
new rows than there are slots, so one of them did not fit). When a read finds nothing in its
levels, the walk jumps to the next rank that holds anything (`next_below`) instead of
stepping through empty levels. The reads are the caller's
(`allocation.picks.candidates` and `next_rank` on SQLite); `tests/unit/test_walk.py` checks the
walk against a plain model of the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from priorizer.queue.policy import fit, total_mb


class Row(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def rank(self) -> float: ...
    @property
    def budget_mb(self) -> float: ...


R = TypeVar("R", bound=Row)
# read(levels, remaining budget, limit): the rows of those levels that fit, in queue order.
Read = Callable[[list[float], float, int], Sequence[R]]


def walk(
    levels: Sequence[float],
    *,
    remaining: float,
    slots: int,
    skip: set[str],
    read: Read[R],
    next_below: Callable[[float], float | None],
    per_query: int,
    ascending: bool = False,
) -> list[R]:
    """The rows to lease, in the order taken; never one in `skip`. Every round finishes a level
    or picks a row, so the walk ends within `len(levels) + slots + 1` reads. `ascending`: the
    reads return each level's rows smallest first."""
    levels = list(levels)
    picked: list[R] = []
    passed = set(skip)
    for _ in range(len(levels) + slots + 1):
        if not levels or len(picked) >= slots:
            break
        batch = levels[:per_query]
        # Read past the rows passed over: taken by this request, or lost to another.
        limit = slots - len(picked) + len(passed)
        rows = read(batch, remaining, limit)
        if not rows:
            below = next_below(batch[-1])
            levels = [] if below is None else [below, *(x for x in levels if x < below)]
            continue
        finished = 0
        for level in batch:
            level_rows = [row for row in rows if row.rank == level]
            fresh = [row for row in level_rows if row.id not in passed]
            chosen = fit(fresh, remaining, slots - len(picked))
            picked += chosen
            passed.update(row.id for row in chosen)
            remaining -= total_mb(chosen)
            if len(level_rows) == limit and not (
                ascending and remaining < level_rows[-1].budget_mb
            ):
                break  # the level may hold more that fit what is left: read it again
            finished += 1
        levels = levels[finished:]
    return picked
