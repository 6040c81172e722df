"""The simulator's measures: pure functions of a catalog and its live copies (and of churn)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from priorizer.simulate.churn import ChurnWatch
from priorizer.simulate.fleet import Node
from priorizer.simulate.measures import (
    Item,
    all_held,
    copies_histogram,
    coverable_top,
    coverage,
    held_mb,
    per_priority,
    pooled_upper_bound,
    share_held,
    summary,
    top_redundancy,
)

CATALOG = [
    Item("a", 100.0, 10),
    Item("b", 50.0, 8),
    Item("c", 400.0, 5),
    Item("d", 10.0, 1),
]

catalogs = st.lists(
    st.builds(
        Item,
        id=st.uuids().map(str),
        size_mb=st.floats(0, 5000, allow_nan=False),
        priority=st.integers(1, 10),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda item: item.id,
)


def test_coverage_is_the_share_of_priority_mass_held():
    assert coverage(CATALOG, {}) == 0.0
    assert coverage(CATALOG, {"a": 1}) == 10 / 24
    assert coverage(CATALOG, {"a": 2, "d": 1}) == 11 / 24  # a second copy adds no coverage
    assert coverage(CATALOG, dict.fromkeys("abcd", 1)) == 1.0


def test_top_redundancy_counts_priority_eight_and_up_held_twice():
    assert top_redundancy(CATALOG, {"a": 2, "b": 1, "c": 2}) == 0.5
    assert top_redundancy(CATALOG, {"a": 3, "b": 2}) == 1.0
    assert top_redundancy([Item("x", 1.0, 7)], {"x": 2}) is None  # no top data at all
    assert share_held(CATALOG, {"a": 1, "b": 1}, min_priority=8, min_copies=1) == 1.0


def test_upper_bound_fills_the_pooled_disks_by_priority_per_mb():
    # Densities: d 0.1, b 0.16, a 0.1, c 0.0125 per MB. With 160 MB: b (50), then a and d tie
    # at 0.1 (ids order them: a then d); a (100) fits, then 10 MB of d's 10: all but c.
    assert pooled_upper_bound(CATALOG, 160.0) == pytest.approx((8 + 10 + 1) / 24)
    # 100 MB: b whole, then half of a.
    assert pooled_upper_bound(CATALOG, 100.0) == pytest.approx((8 + 5) / 24)
    assert pooled_upper_bound(CATALOG, 0.0) == 0.0
    assert pooled_upper_bound(CATALOG, 10_000.0) == 1.0


def test_files_of_no_size_are_held_even_by_no_disk():
    assert pooled_upper_bound([Item("empty", 0.0, 3), Item("big", 10.0, 3)], 0.0) == 0.5


@given(catalogs, st.lists(st.floats(0, 20_000, allow_nan=False), min_size=1, max_size=8))
def test_no_allocation_of_whole_files_to_disks_beats_the_bound(items, disks):
    """Fill the disks with whole files in a random order, one copy each: the coverage reached
    is never above the bound of the same disks pooled."""
    order = random.Random(len(items)).sample(items, len(items))
    free = list(disks)
    copies: dict[str, int] = {}
    for item in order:
        for n, room in enumerate(free):
            if item.size_mb <= room:
                free[n] -= item.size_mb
                copies[item.id] = 1
                break
    assert coverage(items, copies) <= pooled_upper_bound(items, sum(disks)) + 1e-9


@given(catalogs, st.floats(0, 50_000, allow_nan=False), st.floats(0, 50_000, allow_nan=False))
def test_the_bound_is_a_share_that_grows_with_the_disks(items, smaller, more):
    low = pooled_upper_bound(items, smaller)
    assert 0.0 <= low <= pooled_upper_bound(items, smaller + more) <= 1.0


@given(catalogs, st.data())
def test_measures_agree_with_each_other(items, data):
    copies = {item.id: data.draw(st.integers(0, 3)) for item in items}
    rows = per_priority(items, copies, target=2)
    assert sum(row.assets for row in rows) == len(items)
    assert [row.priority for row in rows] == sorted({i.priority for i in items}, reverse=True)
    assert all(row.at_target <= row.held <= row.assets for row in rows)
    assert sum(copies_histogram(items, copies).values()) == len(items)
    assert 0.0 <= coverage(items, copies) <= 1.0
    assert (coverage(items, copies) == 1.0) == all(copies.values())
    assert held_mb(items, copies) == pytest.approx(sum(i.size_mb * copies[i.id] for i in items))


def test_per_priority_counts_assets_and_megabytes():
    rows = per_priority(CATALOG, {"a": 2, "c": 1}, target=2)
    by_priority = {row.priority: row for row in rows}
    assert [row.priority for row in rows] == [10, 8, 5, 1]
    assert (by_priority[10].held, by_priority[10].at_target, by_priority[10].held_mb) == (1, 1, 100)
    assert (by_priority[5].held, by_priority[5].at_target) == (1, 0)
    assert (by_priority[8].held, by_priority[8].mb, by_priority[8].held_mb) == (0, 50.0, 0.0)


def test_copies_histogram_and_disk_used():
    copies = {"a": 2, "b": 1}
    assert copies_histogram(CATALOG, copies) == {0: 2, 1: 1, 2: 1}
    assert held_mb(CATALOG, copies) == 250.0
    figures = summary(CATALOG, copies, capacity_mb=1000.0, target=2)
    assert figures["disk_used"] == 0.25
    assert (figures["assets_held"], figures["copies"]) == (2, 3)


def test_time_to_cover_waits_only_for_top_assets_that_fit_a_disk():
    items = [Item("small", 10.0, 10), Item("huge", 90_000.0, 10), Item("low", 1.0, 3)]
    ids = coverable_top(items, [50_000.0, 20_000.0])
    assert ids == ["small"]
    assert all_held(ids, {"small": 1})
    assert not all_held(ids, {"low": 1})
    assert coverable_top([], [1.0]) == []


def test_churn_watch_follows_the_top_assets_vanished_nodes_held():
    gone = Node("n1", 1000.0, held={"top": 10.0, "other": 5.0, "top2": 1.0})
    watch = ChurnWatch(frozenset({"top", "top2", "top3"}), target=2)
    copies = {"top": 1, "top2": 2}  # after the loss: top had 2 copies, top2 had 3
    watch.vanished([gone], copies, now=7200)
    assert watch.need == {"top": 2, "top2": 2}  # back to the target, no more
    assert watch.observe(copies, now=7200) == 1
    watch.marked_lost(now=36_000)
    assert watch.observe({"top": 2, "top2": 2}, now=39_600) == 0
    series = [{"hours": 1.0}, {"hours": 2.0}, {"hours": 11.0}]
    summary = watch.summary(series, {"nodes_vanished": 1})
    assert summary["before"] == {"hours": 1.0} and summary["after"] == {"hours": 2.0}
    assert (summary["server_knew_after_hours"], summary["recovered_after_hours"]) == (8.0, 9.0)
    assert summary["top_assets_hit"] == 2
    assert ChurnWatch(frozenset(), target=2).summary(series, {}) is None  # nothing vanished
