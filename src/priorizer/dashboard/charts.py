"""Chart geometry, as plain functions: the templates draw what these compute.

Charts are SVG drawn on the server, in a 100-unit-wide view box scaled to the page: bars need
no library, read without JavaScript, and cost nothing to load.
"""

from __future__ import annotations

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
    series: Sequence[tuple[str, Sequence[tuple[str, float]]]], *, height: float, gap: float = 0.2
) -> list[Column]:
    """Columns side by side over a `WIDTH` by `height` view box, each stacked from its parts
    (css, value) and scaled so the tallest fills the height. `gap` is the share of each slot
    left empty between columns."""
    if not series:
        return []
    series = [(label, [(css, max(0.0, value)) for css, value in parts]) for label, parts in series]
    tallest = max(sum(value for _, value in parts) for _, parts in series)
    slot = WIDTH / len(series)
    result = []
    for index, (label, parts) in enumerate(series):
        bottom, stacked = height, []
        for css, value in parts:
            bar = height * value / tallest if tallest > 0 else 0.0
            bottom -= bar
            stacked.append((css, value, round(bottom, 3), round(bar, 3)))
        total = sum(value for _, value in parts)
        x = index * slot + slot * gap / 2
        result.append(Column(label, total, round(x, 3), round(slot * (1 - gap), 3), tuple(stacked)))
    return result
