"""Chart geometry, as plain functions: the templates draw what these compute.

Charts are SVG drawn on the server, in a 100-unit-wide view box scaled to the page: bars need
no library, read without JavaScript, and cost nothing to load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 100.0


@dataclass(frozen=True)
class Segment:
    """One part of a stacked bar: `x` and `width` in view-box units (percent of the bar)."""

    label: str
    value: float
    css: str
    x: float
    width: float


@dataclass(frozen=True)
class Column:
    """One column of a column chart: `x`, `width`, `y` and `height` in view-box units; a stacked
    column's parts in `parts`, bottom first."""

    label: str
    value: float
    x: float
    width: float
    parts: tuple[tuple[str, float, float, float], ...]  # (css, value, y, height)


def stacked_bar(
    parts: Sequence[tuple[str, float, str]], *, total: float | None = None
) -> list[Segment]:
    """A 100-unit bar split in proportion to each part's value (of `total`, or of their sum)."""
    total = sum(value for _, value, _ in parts) if total is None else total
    segments, x = [], 0.0
    for label, value, css in parts:
        width = WIDTH * value / total if total > 0 else 0.0
        segments.append(Segment(label, value, css, round(x, 3), round(width, 3)))
        x += width
    return segments


def columns(
    series: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    *,
    height: float,
    gap: float = 0.2,
    slots: int = 0,
    top: float | None = None,
) -> list[Column]:
    """Columns side by side over a `WIDTH` by `height` view box, each stacked from its parts
    (css, value). The width is cut into `slots` equal slots (at least one per column), the
    columns taking the rightmost ones: a timeline keeps its scale however few columns it has.
    A column of `top` fills the height (by default the tallest does). `gap` is the share of
    each slot left empty between columns."""
    if not series:
        return []
    series = [(label, [(css, max(0.0, value)) for css, value in parts]) for label, parts in series]
    tallest = max(sum(value for _, value in parts) for _, parts in series)
    scale = max(tallest, top or 0.0)
    count = max(len(series), slots)
    slot = WIDTH / count
    first = count - len(series)
    result = []
    for index, (label, parts) in enumerate(series, start=first):
        bottom, stacked = height, []
        for css, value in parts:
            bar = height * value / scale if scale > 0 else 0.0
            bottom -= bar
            stacked.append((css, value, round(bottom, 3), round(bar, 3)))
        total = sum(value for _, value in parts)
        x = index * slot + slot * gap / 2
        result.append(Column(label, total, round(x, 3), round(slot * (1 - gap), 3), tuple(stacked)))
    return result


@dataclass(frozen=True)
class Timeline:
    """Columns over time, newest at the right, on a round scale: `top` is the value of the
    full height (its gridlines are at `top` and half of it), and `labels` the text under each
    slot, left to right ('' under most, so they never crowd)."""

    columns: list[Column]
    top: float
    labels: list[str]


def timeline(
    series: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    *,
    height: float,
    slots: int,
    whole: bool = False,
    labelled: int = 6,
) -> Timeline:
    """`series` (oldest first) in `slots` slots, scaled to a round top (`nice_top`; `whole`
    for counts), with at most `labelled` slots labelled, back from the newest."""
    tallest = max((sum(max(0.0, v) for _, v in parts) for _, parts in series), default=0.0)
    top = nice_top(tallest, whole=whole)
    cols = columns(series, height=height, slots=slots, top=top)
    count = max(len(series), slots)
    every = max(1, math.ceil(count / labelled))
    labels = [""] * count
    for back, column in enumerate(reversed(cols)):
        if back % every == 0:
            labels[count - 1 - back] = column.label
    return Timeline(cols, top, labels)


def nice_top(value: float, *, whole: bool = False) -> float:
    """The smallest round number at or above `value`, to top a scale: 1, 2 or 5 times a power
    of ten, or for counts (`whole`) 2, 4, 6, 8 or 10 times one, so that half of it is a
    whole number too. Nothing at all gets the smallest such top."""
    steps = (2, 4, 6, 8, 10) if whole else (1, 2, 5, 10)
    if not math.isfinite(value) or value <= 0:
        return float(steps[0])
    if whole:
        value = max(value, 2.0)
    power = 10.0 ** (math.floor(math.log10(value)) - 1)
    for top in sorted(step * p for p in (power, power * 10) for step in steps):
        if value <= top * (1 + 1e-9):
            return float(top)
    return float(value)  # unreachable: value < 10 * power * 10
