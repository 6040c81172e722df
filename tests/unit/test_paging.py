"""The pager's rules (harvest.paging): every sign of a portal that does not play along."""

from __future__ import annotations

import pytest

from priorizer.harvest.paging import KEYSET, OFFSET, Listed, Pager, Stalled


def page(
    ids: list[str],
    *,
    stamp: str = "2024-01-01T00:00:00.000Z",
    count: int | None = 100,
    cursor: str | None = None,
    skip: int = 0,
) -> Listed:
    entries = tuple((i, stamp) for i in ids)
    return Listed(entries, count, cursor or stamp, skip or len(ids), len(ids))


def ids(start: int, n: int) -> list[str]:
    return [f"d{k:04d}" for k in range(start, start + n)]


def test_an_honest_portal_stays_on_the_keyset_to_the_empty_page():
    pager = Pager(rows=10)
    for k in range(3):
        stamp = f"2024-01-0{k + 1}T00:00:00.000Z"
        step = pager.advance(page(ids(10 * k, 10), stamp=stamp, count=30 - 10 * k))
        assert not step.done and len(step.keep) == 10
    assert pager.advance(Listed((), 0, None, 0, 0)).done
    assert pager.mode == KEYSET and pager.note is None and pager.complete


def test_a_count_that_does_not_shrink_means_the_filter_is_ignored():
    pager = Pager(rows=9)  # pages of 9 asked for: a whole one is passed by the second
    pager.advance(page(ids(0, 10), stamp="2024-01-01T00:00:00.000Z", count=50, skip=1))
    step = pager.advance(page(ids(10, 10), stamp="2024-01-02T00:00:00.000Z", count=50, skip=1))
    assert pager.mode == OFFSET and "count does not shrink" in (pager.note or "")
    assert step.skip == 0 and len(step.keep) == 10


def test_a_cursor_that_does_not_move_falls_back():
    pager = Pager(rows=10)
    first = page(ids(0, 10), count=None)
    pager.advance(first)
    pager.advance(
        Listed(
            first.entries[:1] + page(ids(10, 9)).entries,
            None,
            first.next_cursor,
            first.next_skip,
            10,
        )
    )
    assert pager.mode == OFFSET and "cursor does not move" in (pager.note or "")


def test_offset_paging_ends_on_the_empty_page_and_stalls_are_bounded():
    pager = Pager(rows=10, mode=OFFSET)
    for k in range(3):
        assert not pager.advance(page(ids(10 * k, 10), count=30)).done
    assert pager.advance(Listed((), 30, None, 0, 0)).done and pager.complete
    stuck = Pager(rows=10, mode=OFFSET)
    stuck.advance(page(ids(0, 10), count=1000))
    with pytest.raises(Stalled, match="5 pages in a row"):
        for _ in range(5):
            stuck.advance(page(ids(0, 10), count=1000))


def test_offset_paging_past_the_count_and_its_margin_stops_not_complete():
    pager = Pager(rows=10, mode=OFFSET)
    step = None
    for k in range(30):
        step = pager.advance(page(ids(10 * k, 10), count=20))
        if step.done:
            break
    assert step is not None and step.done and not pager.complete
    assert pager.skip == 30 and "past the portal's count" in (pager.note or "")  # 20 + a page
