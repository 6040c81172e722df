"""The level walk (`queue.walk`) against a plain model of the rules: take the queued assets in
queue order (rank, highest first; smallest file first; id), each one that still fits the budget
and the slots, never one passed over. In-memory reads stand in for the database's."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from priorizer.queue.policy import QueuePolicy, rank_levels
from priorizer.queue.walk import walk

POLICY = QueuePolicy(
    replication_target=2,
    copy_penalty=3.0,
    unknown_size_mb=1024.0,
    size_penalty=2.0,
    size_penalty_from_mb=1024.0,
    size_penalty_max=4.0,
    smallest_first=True,
)
LEVELS = rank_levels(POLICY)


@dataclass(frozen=True)
class Row:
    id: str
    rank: float
    budget_mb: float


def queue_order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (-row.rank, row.budget_mb, row.id))


class Catalog:
    """The reads the walk makes, over a list of rows, counted."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = queue_order(rows)
        self.reads = 0

    def read(self, levels: list[float], max_mb: float, limit: int) -> list[Row]:
        """As `allocation.picks.candidates` reads: in each level, its first `limit` rows
        (queue order) that fit `max_mb`."""
        self.reads += 1
        found: list[Row] = []
        for level in levels:
            found += [r for r in self.rows if r.rank == level and r.budget_mb <= max_mb][:limit]
        return queue_order(found)

    def next_below(self, rank: float) -> float | None:
        return max((r.rank for r in self.rows if r.rank < rank), default=None)

    def walk(self, *, remaining: float, slots: int, skip: set[str], **options) -> list[Row]:
        """The walk over this catalog's reads."""
        return walk(
            LEVELS,
            remaining=remaining,
            slots=slots,
            skip=skip,
            read=self.read,
            next_below=self.next_below,
            **options,
        )


def model(rows: list[Row], *, remaining: float, slots: int, skip: set[str]) -> list[Row]:
    picked = []
    for row in queue_order(rows):
        if len(picked) < slots and row.id not in skip and row.budget_mb <= remaining:
            picked.append(row)
            remaining -= row.budget_mb
    return picked


rows_strategy = st.lists(
    st.builds(
        Row,
        id=st.uuids().map(lambda u: u.hex[:8]),
        rank=st.sampled_from(LEVELS),
        budget_mb=st.sampled_from([1.0, 5.0, 50.0, 300.0, 1024.0, 3000.0]),
    ),
    max_size=60,
    unique_by=lambda row: row.id,
)


crowded_rows_strategy = st.lists(  # few levels, many rows each: reads fill up
    st.builds(
        Row,
        id=st.uuids().map(lambda u: u.hex[:8]),
        rank=st.sampled_from(LEVELS[:2]),
        budget_mb=st.sampled_from([1.0, 2.0, 5.0, 10.0, 50.0]),
    ),
    max_size=60,
    unique_by=lambda row: row.id,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.one_of(rows_strategy, crowded_rows_strategy),
    remaining=st.one_of(
        st.floats(min_value=0, max_value=10_000), st.sampled_from([5.0, 10.0, 25.0, 60.0])
    ),
    slots=st.integers(min_value=1, max_value=30),
    skip_share=st.floats(min_value=0, max_value=0.5),
    per_query=st.integers(min_value=1, max_value=4),
)
def test_the_walk_takes_what_the_rules_take(rows, remaining, slots, skip_share, per_query):
    skip = {row.id for row in rows[: int(len(rows) * skip_share)]}
    catalog = Catalog(rows)
    picked = catalog.walk(
        remaining=remaining, slots=slots, skip=set(skip), per_query=per_query, ascending=True
    )
    assert picked == model(rows, remaining=remaining, slots=slots, skip=skip)
    assert catalog.reads <= len(LEVELS) + slots + 1


def test_a_level_fuller_than_a_read_is_read_again_past_what_was_taken():
    rows = [Row(f"a{i:02}", 10.0, 1.0) for i in range(12)]
    catalog = Catalog(rows)
    lost = {"a00", "a01"}  # to another request: read past them
    picked = catalog.walk(remaining=100.0, slots=10, skip=lost, per_query=2)
    assert [row.id for row in picked] == [f"a{i:02}" for i in range(2, 12)]


def test_a_full_read_of_a_level_is_not_read_again_once_nothing_further_fits():
    # Smallest first: the level's first ten fill the read, two of them fill the budget, and
    # what is left (5 MiB) is less than the last size read, so nothing past them fits: the
    # next level comes from the same read, and the second read finds no more levels.
    rows = [Row(f"a{i:02}", LEVELS[0], 10.0) for i in range(30)] + [Row("low", LEVELS[1], 4.0)]
    catalog = Catalog(rows)
    picked = catalog.walk(remaining=25.0, slots=10, skip=set(), per_query=2, ascending=True)
    assert [row.id for row in picked] == ["a00", "a01", "low"]
    assert catalog.reads == 2  # read again, the first level would take three


def test_empty_levels_are_jumped_over_not_read_one_by_one():
    rows = [Row("low", LEVELS[-1], 1.0)]
    catalog = Catalog(rows)
    picked = catalog.walk(remaining=10.0, slots=5, skip=set(), per_query=2)
    assert picked == rows
    assert catalog.reads == 2  # the top two levels, then straight to the lowest
