"""The dashboard's pure parts: chart geometry (dashboard/charts.py), the Jinja filters
(dashboard/formats.py) and the shaping of progress rows and cycles (dashboard/service.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from priorizer.dashboard import charts, formats, service
from priorizer.dashboard.charts import Column, Segment

# Geometry is rounded to 3 decimals: each rounding moves a figure by at most half of 0.001.
EPS = 0.0005 + 1e-9

values = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
small_ints = st.integers(min_value=0, max_value=10**9)
amounts = st.one_of(values, small_ints)
css_names = st.sampled_from(["done", "partial", "none", "failed", "expired", "released"])
parts_lists = st.lists(st.tuples(st.text(max_size=8), amounts, css_names), max_size=8)


# --- stacked_bar --------------------------------------------------------------------------------


def _check_contiguous(segments: list[Segment]) -> None:
    """Each segment starts where the one before it ends, the first at 0."""
    if segments:
        assert segments[0].x == 0
    for before, after in pairwise(segments):
        assert after.x == pytest.approx(before.x + before.width, abs=3 * EPS)


@given(parts_lists)
def test_a_bar_of_its_parts_sum_fills_the_width_contiguously(parts):
    segments = charts.stacked_bar(parts)

    assert [(s.label, s.value, s.css) for s in segments] == parts  # order and data kept
    total = sum(value for _, value, _ in parts)
    widths = [s.width for s in segments]
    assert all(w >= 0 for w in widths)
    if total > 0:
        assert sum(widths) == pytest.approx(charts.WIDTH, abs=len(parts) * EPS)
        last = segments[-1]
        assert last.x + last.width == pytest.approx(charts.WIDTH, abs=2 * EPS)
        for segment in segments:
            assert segment.width == pytest.approx(charts.WIDTH * segment.value / total, abs=EPS)
    else:
        assert widths == [0.0] * len(parts)
    _check_contiguous(segments)


@given(parts_lists, st.floats(min_value=0, max_value=10))
def test_a_bar_of_a_larger_total_leaves_the_rest_empty(parts, extra):
    total = sum(value for _, value, _ in parts)
    whole = total * (1 + extra)

    segments = charts.stacked_bar(parts, total=whole)

    if whole > 0:
        share = charts.WIDTH * total / whole
        assert sum(s.width for s in segments) == pytest.approx(share, abs=len(parts) * EPS)
    assert all(s.x + s.width <= charts.WIDTH + 2 * EPS for s in segments)
    _check_contiguous(segments)


def test_a_bar_is_split_in_proportion():
    segments = charts.stacked_bar(
        [("at target", 1, "done"), ("with a copy", 1, "partial"), ("no copy yet", 2, "none")]
    )

    assert [(s.x, s.width) for s in segments] == [(0.0, 25.0), (25.0, 25.0), (50.0, 50.0)]


def test_a_bar_of_thirds_is_rounded_but_still_reaches_the_end():
    segments = charts.stacked_bar([("a", 1, "done"), ("b", 1, "partial"), ("c", 1, "none")])

    assert [s.width for s in segments] == [33.333, 33.333, 33.333]
    assert [s.x for s in segments] == [0.0, 33.333, 66.667]


@pytest.mark.parametrize("total", [0, 0.0, None])
def test_an_empty_bar_is_all_zero_widths_and_no_division_error(total):
    segments = charts.stacked_bar([("a", 0, "done"), ("b", 0.0, "none")], total=total)

    assert [(s.x, s.width) for s in segments] == [(0.0, 0.0), (0.0, 0.0)]
    assert charts.stacked_bar([]) == []


# --- columns ------------------------------------------------------------------------------------

series_lists = st.lists(
    st.tuples(st.text(max_size=5), st.lists(st.tuples(css_names, amounts), max_size=4)),
    max_size=12,
)
heights = st.sampled_from([1.0, 30.0, 40.0, 100.0])


def _check_column(column: Column, height: float) -> None:
    """Parts stacked bottom first, touching, inside the view box."""
    bottom = height
    for _css, _value, y, h in column.parts:
        assert h >= 0
        assert y + h == pytest.approx(bottom, abs=3 * EPS)
        assert y >= -EPS
        bottom = y
    assert sum(h for *_, h in column.parts) <= height + len(column.parts) * EPS


@given(series_lists, heights)
def test_columns_never_exceed_the_height_and_the_tallest_fills_it(series, height):
    cols = charts.columns(series, height=height)

    assert [c.label for c in cols] == [label for label, _ in series]
    totals = [sum(value for _, value in parts) for _, parts in series]
    assert [c.value for c in cols] == totals
    for column in cols:
        _check_column(column, height)
    drawn = [sum(h for *_, h in c.parts) for c in cols]
    if totals and max(totals) > 0:
        tallest = totals.index(max(totals))
        assert drawn[tallest] == pytest.approx(height, abs=len(cols[tallest].parts) * EPS)
        for column, total, size in zip(cols, totals, drawn, strict=True):
            assert size == pytest.approx(height * total / max(totals), abs=5 * EPS), column
    else:
        assert all(size == 0 for size in drawn)


@given(series_lists, heights, st.sampled_from([0.0, 0.2, 0.5]))
def test_columns_sit_side_by_side_in_equal_slots_within_the_width(series, height, gap):
    cols = charts.columns(series, height=height, gap=gap)

    if not series:
        assert cols == []
        return
    slot = charts.WIDTH / len(series)
    for index, column in enumerate(cols):
        assert column.x == pytest.approx(index * slot + slot * gap / 2, abs=EPS)
        assert column.width == pytest.approx(slot * (1 - gap), abs=EPS)
        assert column.x >= 0
        assert column.x + column.width <= charts.WIDTH + 2 * EPS
    for left, right in pairwise(cols):
        assert left.x + left.width <= right.x + 2 * EPS


def test_all_zero_columns_have_zero_height_at_the_baseline():
    cols = charts.columns([("a", [("done", 0), ("failed", 0)]), ("b", [])], height=30)

    assert [c.parts for c in cols] == [(("done", 0, 30.0, 0.0), ("failed", 0, 30.0, 0.0)), ()]
    assert [c.value for c in cols] == [0, 0]


def test_stacked_columns_scale_to_the_tallest():
    cols = charts.columns(
        [("1", [("done", 2), ("failed", 1)]), ("2", [("done", 6)])], height=30, gap=0
    )

    assert cols[0].parts == (("done", 2, 20.0, 10.0), ("failed", 1, 15.0, 5.0))
    assert cols[1].parts == (("done", 6, 0.0, 30.0),)
    assert [(c.x, c.width) for c in cols] == [(0.0, 50.0), (50.0, 50.0)]


# --- formats ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (7, "7"), (1234, "1,234"), (1234567, "1,234,567"), (2.6, "3"), (999.4, "999")],
)
def test_number(value, text):
    assert formats.number(value) == text


@pytest.mark.parametrize(
    ("megabytes", "text"),
    [
        (0, "0 MB"),
        (0.5, "0.5 MB"),
        (1, "1.0 MB"),
        (99.5, "99.5 MB"),
        (100, "100 MB"),
        (1023, "1,023 MB"),
        (1024, "1.0 GB"),
        (1536, "1.5 GB"),
        (100 * 1024, "100 GB"),
        (1023 * 1024, "1,023 GB"),
        (1024**2, "1.0 TB"),
        (1024**3, "1.0 PB"),
        (1024**4, "1.0 EB"),
        (1024**5, "1,024 EB"),  # nothing above exabytes
    ],
)
def test_size_uses_the_largest_binary_unit_under_1024(megabytes, text):
    assert formats.size(megabytes) == text


@given(st.floats(min_value=0, max_value=1e18, allow_nan=False))
def test_size_reads_back_to_the_same_amount(megabytes):
    number, unit = formats.size(megabytes).split(" ")
    shown = float(number.replace(",", ""))
    scale = 1024 ** formats.SIZE_UNITS.index(unit)
    assert shown * scale == pytest.approx(megabytes, rel=0.01, abs=0.05 * scale)
    if unit != formats.SIZE_UNITS[0]:
        assert megabytes >= scale  # never "0.9 GB": a smaller unit would do


@pytest.mark.parametrize("megabytes", [1023.7, 1024**2 - 0.1])
def test_size_never_shows_1024_of_a_unit_below_the_largest(megabytes):
    number, _unit = formats.size(megabytes).split(" ")
    assert float(number.replace(",", "")) < 1024


@pytest.mark.parametrize(
    ("part", "whole", "text"),
    [
        (0, 0, formats.NONE),
        (5, 0, formats.NONE),
        (0, 0.0, formats.NONE),
        (0, 8, "0 %"),
        (8, 8, "100 %"),
        (3, 8, "37.5 %"),
        (1, 3, "33.3 %"),
        (2, 3, "66.7 %"),
    ],
)
def test_percent(part, whole, text):
    assert formats.percent(part, whole) == text


@pytest.mark.parametrize(("part", "whole"), [(1999, 2000), (1, 100_000)])
def test_percent_short_of_all_or_above_none_never_reads_like_all_or_none(part, whole):
    assert formats.percent(part, whole) not in ("100.0 %", "0.0 %")


NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0 s ago"),
        (timedelta(seconds=45), "45 s ago"),
        (timedelta(seconds=89), "89 s ago"),
        (timedelta(seconds=90), "2 min ago"),
        (timedelta(minutes=3), "3 min ago"),
        (timedelta(minutes=89), "89 min ago"),
        (timedelta(minutes=90), "2 h ago"),
        (timedelta(hours=5), "5 h ago"),
        (timedelta(hours=47), "47 h ago"),
        (timedelta(hours=48), "2 d ago"),
        (timedelta(days=30), "30 d ago"),
        (timedelta(seconds=-5), "just now"),  # another process's clock a little ahead
    ],
)
def test_ago(delta, text):
    assert formats.ago(NOW - delta, NOW) == text


def test_ago_of_nothing_is_never():
    assert formats.ago(None, NOW) == "never"


def test_utc_and_duration():
    assert formats.utc(NOW) == "2026-01-15 12:00:00 UTC"
    assert formats.utc(None) == formats.NONE
    assert formats.duration(None) == formats.NONE
    assert formats.duration(0) == "0 ms"
    assert formats.duration(0.25) == "250 ms"
    assert formats.duration(1) == "1.0 s"
    assert formats.duration(12.34) == "12.3 s"


def test_every_filter_is_registered():
    registered = formats.FILTERS
    assert registered == {
        "number": formats.number,
        "size": formats.size,
        "percent": formats.percent,
        "ago": formats.ago,
        "utc": formats.utc,
        "duration": formats.duration,
    }


# --- service: progress rows, cycles -------------------------------------------------------------


@st.composite
def progress_rows(draw: Any) -> list[dict[str, Any]]:
    """Rows as `catalog.repo.progress` gives them: one per (base priority, state)."""
    keys = draw(
        st.lists(
            st.tuples(st.integers(1, 10), st.sampled_from(["active", "unreachable", "withdrawn"])),
            unique=True,
            max_size=12,
        )
    )
    rows = []
    for priority, state in keys:
        assets = draw(st.integers(1, 10_000))
        with_copy = draw(st.integers(0, assets))
        at_target = draw(st.integers(0, with_copy))
        unknown = draw(st.integers(0, assets))
        megabytes = draw(st.floats(0, 1e9))
        with_copy_mb = draw(st.floats(0, megabytes)) if megabytes else 0.0
        at_target_mb = draw(st.floats(0, with_copy_mb)) if with_copy_mb else 0.0
        rows.append(
            {
                "priority": priority,
                "state": state,
                "assets": assets,
                "with_copy": with_copy,
                "at_target": at_target,
                "unknown_size": unknown,
                "megabytes": megabytes,
                "megabytes_with_copy": with_copy_mb,
                "megabytes_at_target": at_target_mb,
            }
        )
    return rows


SUMMED = (
    "assets",
    "with_copy",
    "at_target",
    "unknown_size",
    "megabytes",
    "megabytes_with_copy",
    "megabytes_at_target",
)


@given(progress_rows())
def test_progress_total_adds_the_rows_up_with_bars_that_fill_their_width(rows):
    total = service.progress_total(rows)

    for key in SUMMED:
        assert total[key] == pytest.approx(sum(row[key] for row in rows)), key
    for bar, whole in (("asset_bar", total["assets"]), ("byte_bar", total["megabytes"])):
        segments = total[bar]
        assert [s.label for s in segments] == ["at target", "with a copy", "no copy yet"]
        assert all(s.width >= -EPS for s in segments)
        if whole > 0:
            assert sum(s.width for s in segments) == pytest.approx(charts.WIDTH, abs=3 * EPS)
        else:
            assert all(s.width == 0 for s in segments)
        _check_contiguous(segments)
    assert [s.value for s in total["asset_bar"]] == [
        total["at_target"],
        total["with_copy"] - total["at_target"],
        total["assets"] - total["with_copy"],
    ]


@given(progress_rows())
def test_by_priority_has_every_priority_highest_first_and_adds_up_to_the_total(rows):
    per = service.progress_by_priority(rows)

    assert [p["priority"] for p in per] == list(range(10, 0, -1))
    total = service.progress_total(rows)
    for key in SUMMED:
        assert sum(p[key] for p in per) == pytest.approx(total[key]), key
    for p in per:
        mine = [row for row in rows if row["priority"] == p["priority"]]
        assert p["assets"] == sum(row["assets"] for row in mine)
        assert p["column"].label == str(p["priority"])
        assert p["column"].value == p["assets"]
        _check_column(p["column"], 40)
    # The distribution's columns go 1 to 10, left to right; the largest fills the chart.
    xs = [p["column"].x for p in reversed(per)]
    assert xs == sorted(xs)
    most = max(p["assets"] for p in per)
    for p in per:
        drawn = sum(h for *_, h in p["column"].parts)
        expected = 40 * p["assets"] / most if most else 0
        assert drawn == pytest.approx(expected, abs=EPS)


def _run(minute: int, *, outcome: str | None = "ok", duration: float | None = 1.0, moved=None):
    stats = None if moved is False else {"since_last_cycle": moved}
    return SimpleNamespace(
        started_at=datetime(2026, 1, 15, 12, minute, tzinfo=UTC),
        outcome=outcome,
        duration_seconds=duration,
        stats=stats,
    )


def test_cycle_columns_go_oldest_first_coloured_by_outcome():
    runs = [  # newest first, as `maintenance.repo.recent` gives them
        _run(6, outcome=None, duration=None),  # still running
        _run(4, outcome="failed", duration=0.5),
        _run(2, duration=2.0),
    ]

    chart = service.cycle_columns(runs)
    cols = chart.columns

    assert [c.label for c in cols] == ["12:02", "12:04", "12:06"]
    assert [c.parts[0][0] for c in cols] == ["ok", "failed", "running"]
    assert [c.value for c in cols] == [2.0, 0.5, 0.0]
    assert chart.top == 2.0  # the longest, 2 s, is a round top already
    assert [c.parts[0][3] for c in cols] == [30.0, 7.5, 0.0]
    # Three cycles take the three rightmost of the 30 slots, not the whole width.
    slot = charts.WIDTH / service.RUNS_SHOWN
    expected = [(27 + i) * slot + slot * 0.1 for i in range(3)]
    assert [c.x for c in cols] == pytest.approx(expected, abs=EPS)
    # Labels 5 slots apart (never crowded), back from the newest: here the newest alone.
    assert chart.labels[-1] == "12:06" and set(chart.labels[:-1]) == {""}


def test_outcome_columns_skip_cycles_with_nothing_to_compare():
    moved = {"opened": 4, "completed": 2, "failed": 1, "expired": 0, "released": 1}
    runs = [
        _run(8, outcome="failed", moved=False),  # a failed cycle took no snapshot
        _run(6, moved=moved),
        _run(4, moved=None),  # the first cycle: nothing before it
    ]

    chart = service.outcome_columns(runs)
    [column] = chart.columns

    assert column.label == "12:06"
    assert [(css, value) for css, value, _y, _h in column.parts] == [
        ("done", 2),
        ("failed", 1),
        ("expired", 0),
        ("released", 1),
    ]
    assert column.value == 4  # outcomes only: "opened" is no outcome
    _check_column(column, 30)
    # Four leases on a scale of 0-4 fill the height; the one column sits in the last slot.
    assert chart.top == 4
    assert sum(h for *_, h in column.parts) == pytest.approx(30)
    slot = charts.WIDTH / 30
    assert column.x + column.width == pytest.approx(charts.WIDTH - slot * 0.1, abs=2 * EPS)
    assert column.width == pytest.approx(slot * 0.8, abs=EPS)
    assert service.outcome_totals(chart) == {"done": 2, "failed": 1, "expired": 0, "released": 1}


@pytest.mark.parametrize(
    "moved",
    [
        {"opened": 0, "completed": 1, "failed": 0, "expired": -1, "released": 0},
        {"opened": 0, "completed": 2, "failed": 0, "expired": -2, "released": 2},
    ],
    ids=["completion-cancelled-out", "parts-overlap"],
)
def test_a_negative_net_change_still_draws_the_outcomes_that_happened(moved):
    [column] = service.outcome_columns([_run(6, moved=moved), _run(4, moved=None)]).columns

    drawn = sorted((y, y + h) for _css, _v, y, h in column.parts if h > 0)
    for (_top, bottom), (top, _bottom) in pairwise(drawn):
        assert bottom <= top + EPS  # no part drawn over another
    assert sum(bottom - top for top, bottom in drawn) <= 30 + EPS
    done = next(h for css, _v, _y, h in column.parts if css == "done")
    assert done > 0  # the completion that happened shows
    _check_column(column, 30)


def test_outcome_columns_show_volume_on_a_common_round_scale():
    quiet = {"completed": 3, "failed": 0, "expired": 0, "released": 0}
    busy = {"completed": 30, "failed": 10, "expired": 5, "released": 0}
    runs = [_run(6, moved=busy), _run(4, moved=quiet), _run(2, moved=None)]

    chart = service.outcome_columns(runs)

    assert chart.top == 60  # 45 leases: the next round count whose half is whole
    quiet_column, busy_column = chart.columns
    drawn = [sum(h for *_, h in c.parts) for c in chart.columns]
    assert drawn == pytest.approx([30 * 3 / 60, 30 * 45 / 60])  # a tenth of its height, to scale
    assert busy_column.value == 45 and quiet_column.value == 3


# --- nice_top, timelines ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top", "whole_top"),
    [
        (0, 1, 2),
        (0.004, 0.005, 2),
        (0.3, 0.5, 2),
        (1, 1, 2),
        (3, 5, 4),
        (7, 10, 8),
        (10, 10, 10),
        (11, 20, 20),
        (45, 50, 60),
        (100, 100, 100),
        (101, 200, 200),
        (1000, 1000, 1000),
    ],
)
def test_nice_top_is_the_next_round_number(value, top, whole_top):
    assert charts.nice_top(value) == pytest.approx(top)
    assert charts.nice_top(value, whole=True) == whole_top


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_nice_top_is_above_the_value_and_not_far(value):
    top = charts.nice_top(value)
    assert value <= top * (1 + 1e-9)
    assert top <= 2.5 * value * (1 + 1e-9)  # 1 -> 2 -> 5 -> 10: never more than 2.5 times
    whole = charts.nice_top(value, whole=True)
    assert value <= whole * (1 + 1e-9) and whole >= 2
    assert whole / 2 == int(whole / 2)  # its half, a gridline, is a whole count


@given(series_lists, st.integers(min_value=0, max_value=40))
def test_columns_in_slots_fill_the_rightmost_slots_in_order(series, slots):
    cols = charts.columns(series, height=30, slots=slots)

    count = max(len(series), slots)
    for index, column in enumerate(cols, start=count - len(series)):
        slot = charts.WIDTH / count
        assert column.x == pytest.approx(index * slot + slot * 0.1, abs=EPS)
        assert column.width == pytest.approx(slot * 0.8, abs=EPS)
        _check_column(column, 30)


@given(series_lists, st.floats(min_value=0, max_value=1e13))
def test_columns_scaled_to_a_top_keep_their_proportions_and_never_overflow(series, top):
    cols = charts.columns(series, height=30, top=top)

    totals = [sum(max(0.0, v) for _, v in parts) for _, parts in series]
    scale = max([*totals, top]) if series else 0
    for column, total in zip(cols, totals, strict=True):
        _check_column(column, 30)
        drawn = sum(h for *_, h in column.parts)
        assert drawn == pytest.approx(30 * total / scale if scale else 0, abs=5 * EPS)


@pytest.mark.parametrize(("count", "slots"), [(1, 30), (2, 30), (7, 30), (30, 30), (45, 30)])
def test_a_timeline_labels_the_newest_and_a_few_before_it(count, slots):
    series = [(f"c{i}", [("done", float(i + 1))]) for i in range(count)]

    chart = charts.timeline(series, height=30, slots=slots)

    assert len(chart.labels) == max(count, slots)
    shown = [label for label in chart.labels if label]
    assert shown[-1] == f"c{count - 1}" and chart.labels[-1] == shown[-1]  # the newest
    assert 1 <= len(shown) <= 6
    assert shown == sorted(shown, key=lambda label: int(label[1:]))  # in time order
    assert all(label in {c.label for c in chart.columns} for label in shown)


def test_a_timeline_of_nothing_draws_nothing():
    chart = charts.timeline([], height=30, slots=30)

    assert chart.columns == [] and chart.labels == [""] * 30 and chart.top == 1
