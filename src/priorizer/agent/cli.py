"""`priorizer node`: run a rescue node; `node status` and `node verify` look at what it holds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from priorizer.agent import inventory
from priorizer.agent.client import ServerClient
from priorizer.agent.progress import reporter
from priorizer.agent.runner import GIB, Agent, AgentConfig
from priorizer.agent.seeding import TorrentSettings
from priorizer.agent.state import NodeState

app = typer.Typer(
    help="Run a rescue node.\n\nIt downloads what the server hands out, verifies it and reports it "
    "(docs/node.md).",
    add_completion=False,
)

DirOption = Annotated[
    Path, typer.Option("--dir", metavar="DIR", help="The node's folder: its files and its state.")
]


@app.callback(invoke_without_command=True)
def node(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option(metavar="URL", help="The Priorizer server, e.g. http://127.0.0.1:8002."),
    ] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", metavar="DIR", help="Where files and state are kept.")
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option("--node-id", metavar="ID", help="Default: an id made once and kept in DIR."),
    ] = None,
    max_gb: Annotated[
        float | None,
        typer.Option(
            "--max-gb",
            metavar="GB",
            min=0.0,
            help="Most the node may use, in GiB. Default: DIR's free space.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PRIORIZER_NODE_TOKEN", metavar="TOKEN", help="The node's token (NODE_AUTH)."
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(metavar="N", min=1, max=64, help="Parallel downloads.")
    ] = 4,
    exit_when_idle: Annotated[
        bool,
        typer.Option(
            "--exit-when-idle", help="Stop once the server has nothing more and nothing runs."
        ),
    ] = False,
    seed: Annotated[
        bool, typer.Option("--seed", help="Seed every verified file as a torrent.")
    ] = False,
    listen: Annotated[
        str,
        typer.Option(metavar="HOST:PORT", help="Where torrents listen (port 0: any)."),
    ] = "0.0.0.0:6881",
    announce: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="The address magnet links give peers."),
    ] = None,
    tracker: Annotated[
        list[str] | None,
        typer.Option(metavar="URL", help="A tracker for the torrents made (repeatable)."),
    ] = None,
    no_peer_discovery: Annotated[
        bool,
        typer.Option(
            "--no-peer-discovery", help="No DHT, local discovery, UPnP or NAT-PMP for torrents."
        ),
    ] = False,
    log_format: Annotated[
        str, typer.Option(metavar="FORMAT", help="auto (bars on a terminal), text or json.")
    ] = "auto",
) -> None:
    """Run the node until stopped (Ctrl-C or SIGTERM give back unfinished leases)."""
    if ctx.invoked_subcommand is not None:
        return
    if server is None or directory is None:
        raise typer.BadParameter("--server and --dir are needed to run a node")
    if log_format not in ("auto", "text", "json"):
        raise typer.BadParameter("--log-format must be auto, text or json")
    directory.mkdir(parents=True, exist_ok=True)
    config = AgentConfig(
        server=server,
        directory=directory,
        node_id=node_id,
        token=token or os.environ.get("PRIORIZER_NODE_TOKEN"),
        max_bytes=None if max_gb is None else int(max_gb * GIB),
        concurrency=concurrency,
        exit_when_idle=exit_when_idle,
        seed=seed,
        torrents=TorrentSettings(
            listen=listen,
            discovery=not no_peer_discovery,
            announce=announce,
            trackers=tuple(tracker or ()),
        ),
    )
    agent = Agent(config, reporter(log_format=log_format))
    raise typer.Exit(agent.run())


@app.command()
def status(
    directory: DirOption,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """What the node holds.

    Its files, bytes and whether they are verified, and what is partial or failed."""
    state = _open(directory)
    try:
        summary = inventory.summarize(state)
    finally:
        state.close()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


@app.command()
def verify(
    directory: DirOption,
    server: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Default: the server the node last ran against."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PRIORIZER_NODE_TOKEN", metavar="TOKEN", help="The node's token (NODE_AUTH)."
        ),
    ] = None,
) -> None:
    """Hash the held files again.

    Files that changed are reported to the server (the copy stops counting, and the asset
    returns to the queue). Exits 1 when any changed."""
    state = _open(directory)
    try:
        server = server or state.get_meta("server")
        client = None
        if server:
            client = ServerClient(server, node_id=state.node_id(), token=token, attempts=4)
        damaged = inventory.verify(state, client=client, echo=typer.echo)
        if client is not None:
            client.close()
    finally:
        state.close()
    if damaged:
        raise typer.Exit(1)


def _open(directory: Path) -> NodeState:
    if not (directory / "priorizer-node.sqlite3").exists():
        typer.echo(f"error: {directory} holds no node (no priorizer-node.sqlite3)", err=True)
        raise typer.Exit(2)
    return NodeState(directory)


def _print_summary(summary: dict[str, Any]) -> None:
    console = Console(file=sys.stdout)
    console.print(
        f"node {summary['node_id']} ({summary['server'] or 'no server yet'}): "
        f"{summary['held']['files']} files held, {_size(summary['held']['bytes'])}, "
        f"{summary['held']['verified']} verified since they were written; "
        f"{summary['partial']['files']} partial ({_size(summary['partial']['bytes'])}), "
        f"{summary['failed']} failed, {summary['unreported']} not yet reported"
    )
    table = Table("asset", "name", "size", "sha256", "verified", "reported", "seeded")
    for item in summary["files"]:
        table.add_row(
            item["asset_id"],
            item["name"],
            _size(item["size_bytes"]),
            (item["sha256"] or "")[:16],
            item["verified_at"] or "",
            "yes" if item["reported"] else "no",
            "yes" if item["magnet_link"] else "no",
        )
    console.print(table)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
