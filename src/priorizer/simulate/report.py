"""The simulation's results as tables an operator reads at a glance (rich), or as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

MB_PER_TB = 1024.0**2
PRIORITY_COLUMNS = ("priority", "assets", "held", "at target", "share", "MB", "MB held", "share")

# (label, how to read it from a run); None values print as "-".
HEADLINE: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("coverage (priority mass held)", lambda r: _share(r["coverage"])),
    ("top redundancy (p>=8 on 2+ nodes)", lambda r: _share(r["top_redundancy"])),
    ("top at target (p>=8)", lambda r: _share(r["top_at_target"])),
    ("pooled one-copy upper bound", lambda r: _share(r["upper_bound"])),
    ("assets held / in catalog", lambda r: f"{r['assets_held']:,} / {r['assets']:,}"),
    ("copies", lambda r: f"{r['copies']:,}"),
    (
        "disk used (TiB)",
        lambda r: f"{r['held_mb'] / MB_PER_TB:,.2f} / {r['capacity_mb'] / MB_PER_TB:,.2f}",
    ),
    ("allocate requests (empty)", lambda r: _requests(r["counts"])),
    ("completions / failures", lambda r: _outcomes(r["counts"])),
    ("time to cover top priority", lambda r: _hours(r["time_to_cover_top_hours"])),
    ("simulated time", lambda r: _hours(r["simulated_hours"])),
    ("seconds taken", lambda r: f"{r['seconds']:,.1f}"),
]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _hours(value: float | None) -> str:
    if value is None:
        return "never"
    return f"{value:,.1f} h" if value < 48 else f"{value / 24:,.1f} d"


def _after(hours: float | None) -> str:
    return "never" if hours is None else f"after {_hours(hours)}"


def _requests(counts: dict[str, int]) -> str:
    return f"{counts.get('requests', 0):,} ({counts.get('empty_answers', 0):,})"


def _outcomes(counts: dict[str, int]) -> str:
    return f"{counts.get('completions', 0):,} / {counts.get('failures', 0):,}"


def _label(run: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in run["settings"].items()) or "settings as configured"


def render(report: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    if not console.is_terminal:  # a file or a pipe: tables side by side, not squeezed to 80
        console = Console(width=200)
    runs = report["runs"]
    console.print(_title(report), style="bold")
    console.print(_headline(report))
    if len(runs) == 1:
        console.print(_priorities(runs[0]))
        console.print(_copies(runs[0]))
    else:
        console.print(_priority_shares(runs))
    for run in runs:
        if run["churn"]:
            console.print(_churn(run))


def _title(report: dict[str, Any]) -> str:
    scenario, first = report["scenario"], report["runs"][0]
    fleet = scenario["fleet"]
    databases = ", ".join(sorted({run["database"] for run in report["runs"]}))
    return (
        f"{fleet['nodes']:,} nodes of {fleet['min_free_gb']:g}-{fleet['max_free_gb']:g} GiB free, "
        f"{first['assets']:,} assets, seed {scenario['seed']}; {report['driver']}, {databases}"
    )


def _headline(report: dict[str, Any]) -> Table:
    table = Table()
    table.add_column("measure", style="bold")
    for run in report["runs"]:
        table.add_column(_label(run), justify="right")
    for label, read in HEADLINE:
        table.add_row(label, *(str(read(run)) for run in report["runs"]))
    return table


def _priorities(run: dict[str, Any]) -> Table:
    table = Table(title="coverage per priority", title_justify="left")
    for name in PRIORITY_COLUMNS:
        table.add_column(name, justify="right")
    for row in run["per_priority"]:
        table.add_row(
            str(row["priority"]),
            f"{row['assets']:,}",
            f"{row['held']:,}",
            f"{row['at_target']:,}",
            _share(row["held"] / row["assets"] if row["assets"] else None),
            f"{row['mb']:,.0f}",
            f"{row['held_mb']:,.0f}",
            _share(row["held_mb"] / row["mb"] if row["mb"] else None),
        )
    return table


def _priority_shares(runs: list[dict[str, Any]]) -> Table:
    table = Table(title="assets held once / at target, per priority", title_justify="left")
    table.add_column("priority", justify="right", style="bold")
    for run in runs:
        table.add_column(_label(run), justify="right")
    for i, row in enumerate(runs[0]["per_priority"]):
        shares = [run["per_priority"][i] for run in runs]
        cells = [
            f"{s['held'] / s['assets']:.3f} / {s['at_target'] / s['assets']:.3f}" for s in shares
        ]
        table.add_row(str(row["priority"]), *cells)
    return table


def _copies(run: dict[str, Any]) -> Table:
    table = Table(title="copies per asset", title_justify="left")
    table.add_column("copies", justify="right")
    table.add_column("assets", justify="right")
    for copies, assets in run["copies_histogram"].items():
        table.add_row(copies, f"{assets:,}")
    return table


def _churn(run: dict[str, Any]) -> Table:
    """The campaign from just before the nodes vanished: the live copies, as they changed."""
    churn = run["churn"]
    table = Table(
        title=f"churn ({_label(run)}): {churn['vanished_nodes']} nodes vanished at "
        f"{_hours(churn['vanished_at_hours'])} ({churn['returned_nodes']} came back) with "
        f"copies of {churn['top_assets_hit']:,} top assets. Since then: the server learned "
        f"of it {_after(churn['server_knew_after_hours'])}, every top asset hit had its "
        f"copies back {_after(churn['recovered_after_hours'])}",
        title_justify="left",
    )
    for name in ("time", "live nodes", "copies", "coverage", "top redundancy", "top short"):
        table.add_column(name, justify="right")
    start = (churn["before"] or churn["after"])["hours"]
    for point in run["series"]:
        if point["hours"] >= start:
            table.add_row(
                _hours(point["hours"]),
                str(point["live_nodes"]),
                f"{point['copies']:,}",
                _share(point["coverage"]),
                _share(point["top_redundancy"]),
                f"{point['top_short']:,}",
            )
    return table


def as_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
