"""How the dashboard writes numbers, sizes and times (Jinja filters)."""

from __future__ import annotations

from datetime import datetime

NONE = "\u2013"  # an en dash: no value

SIZE_UNITS = ("MB", "GB", "TB", "PB", "EB")


def number(value: float) -> str:
    """1234567 → '1,234,567'."""
    return f"{round(value):,}"


def size(megabytes: float) -> str:
    """A size in MB (binary, as everywhere in Priorizer) in the largest unit under 1024."""
    value, unit = float(megabytes), SIZE_UNITS[0]
    for unit in SIZE_UNITS:
        # Decided on the value as shown: 1023.7 MB shows as 1.0 GB, not 1,024 MB.
        if abs(round(value, 1 if abs(value) < 100 else 0)) < 1024 or unit == SIZE_UNITS[-1]:
            break
        value /= 1024
    return f"{value:,.0f} {unit}" if value >= 100 or value == 0 else f"{value:.1f} {unit}"


def percent(part: float, whole: float) -> str:
    """'37.5 %'; `NONE` when there is no whole."""
    if not whole:
        return NONE
    share = 100 * part / whole
    if share in (0, 100):
        return f"{share:.0f} %"
    if 0 < share < 0.05:
        return "<0.1 %"  # not "0.0 %": some are there
    if 99.95 <= share < 100:
        return ">99.9 %"  # not "100.0 %": some are missing
    return f"{share:.1f} %"


def ago(moment: datetime | None, now: datetime) -> str:
    """'45 s ago', '3 min ago', '5 h ago', '2 d ago'; 'never' for None."""
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "just now"
    for limit, unit, div in ((90, "s", 1), (5400, "min", 60), (172_800, "h", 3600)):
        if seconds < limit:
            return f"{seconds / div:.0f} {unit} ago"
    return f"{seconds / 86_400:.0f} d ago"


def utc(moment: datetime | None) -> str:
    return NONE if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


FILTERS = {
    "number": number,
    "size": size,
    "percent": percent,
    "ago": ago,
    "utc": utc,
    "duration": duration,
}
