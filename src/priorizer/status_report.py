"""`priorizer status`: GET /status as tables an operator reads at a glance."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table


def _table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(
        title=title, title_justify="left", show_header=False, box=None, pad_edge=False, min_width=48
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, value in rows:
        table.add_row(label, _text(value))
    return table


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _share(part: int, whole: int) -> str:
    return f"{part:,} ({part / whole:.1%})" if whole else f"{part:,}"


def render(figures: dict[str, Any], *, source: str, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    assets = figures["assets"]
    target = figures["replication_target"]
    console.print(f"[bold]Priorizer status[/bold] ({source})")
    console.print(
        _table(
            "Catalog",
            [
                ("assets", assets),
                ("datasets", figures["datasets"]),
                ("with a copy", _share(figures["assets_with_a_copy"], assets)),
                (f"at target ({target} copies)", _share(figures["assets_at_target"], assets)),
                ("copies", figures["copies"]),
                ("with conflicting copies", figures["assets_with_conflicting_copies"]),
                ("unreachable", figures["unreachable_assets"]),
                ("withdrawn", figures["withdrawn_assets"]),
                ("removed upstream, no copy yet", figures.get("removed_without_copy", 0)),
                ("total priority score", figures["total_priority_score"]),
            ],
        )
    )
    console.print(
        _table(
            "Leases and nodes",
            [
                ("open leases", figures["active_allocations"]),
                ("nodes", figures["nodes"]),
                ("lost nodes", figures["lost_nodes"]),
            ],
        )
    )
    last = figures.get("last_maintenance") or {}
    console.print(
        _table(
            "Maintenance",
            [
                ("last cycle", last.get("finished_at")),
                ("outcome", last.get("outcome")),
                ("duration (s)", last.get("duration_seconds")),
                ("next cycle", figures.get("next_auto_update")),
            ],
        )
    )
    for watched in figures.get("sources") or []:
        console.print(
            _table(
                f"Source {watched['id']}: {watched['url']}",
                [
                    ("last run", watched["last_run_at"]),
                    ("outcome", watched["last_state"]),
                    ("next run", watched["next_run_at"]),
                    ("datasets", watched["datasets"]),
                    ("removed upstream", watched["removed_upstream"]),
                    ("error", watched["last_error"]),
                ],
            )
        )
    health = figures["system_health"]
    reason = figures.get("health_reason")
    colour = "green" if health == "healthy" else "red"
    console.print(f"health: [{colour}]{health}[/{colour}]" + (f" ({reason})" if reason else ""))
