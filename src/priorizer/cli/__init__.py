"""The `priorizer` command: serving, the seed's files, maintenance, backups and status (the
CKAN commands are in `cli.harvest`, the steps every command shares in `cli.support`)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from priorizer.cli import discovery as cli_discovery
from priorizer.cli import harvest as cli_harvest
from priorizer.cli import sources as cli_sources
from priorizer.cli.support import (
    argument,
    check_reachable,
    fail,
    load_settings,
    open_to_read,
    open_to_write,
)
from priorizer.config import mask_password
from priorizer.errors import PriorizerError
from priorizer.simulate.command import simulate

cli = typer.Typer(
    help="Priorizer: which public science data gets rescued first, and by whom.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help, as click writes it: paragraphs wrapped to the terminal, names in capitals
    # (Typer's rich panels broke lines mid-sentence and tagged each option with its type).
    rich_markup_mode=None,
)


@cli.command()
def serve(
    demo: Annotated[
        bool,
        typer.Option(show_default=False, help="Load a small demo catalog if the catalog is empty."),
    ] = False,
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Overrides PRIORIZER_HOST.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Overrides PRIORIZER_PORT.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(metavar="N", help="Overrides PRIORIZER_WORKERS.")
    ] = None,
) -> None:
    """Serve the API and the dashboard.

    Migrates the database first, and loads the seed files of DATA_DIRECTORY (or, with --demo, a
    demo catalog) into an empty one."""
    import os
    import shutil
    import tempfile

    import uvicorn

    from priorizer import metrics
    from priorizer.startup import prepare

    settings = load_settings(host=host, port=port, workers=workers)
    problem = settings.unsafe_to_serve()
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    try:
        prepare(settings, demo=demo)
    except PriorizerError as error:
        raise fail(error) from error
    # Worker processes read their settings from the environment: pass the overrides on.
    os.environ.update(
        PRIORIZER_HOST=settings.host,
        PRIORIZER_PORT=str(settings.port),
        PRIORIZER_WORKERS=str(settings.workers),
    )
    counts_dir = None
    if settings.workers > 1 and not os.environ.get(metrics.MULTIPROCESS_DIR):
        # Each worker counts in files here, and /metrics adds them up (prometheus_client).
        counts_dir = tempfile.mkdtemp(prefix="priorizer-metrics-")
        os.environ[metrics.MULTIPROCESS_DIR] = counts_dir
    typer.echo(
        f"Priorizer on http://{settings.host}:{settings.port} ({settings.sqlalchemy_url.split('://')[0]})",
        err=True,
    )
    try:
        uvicorn.run(
            "priorizer.web.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            log_config=None,  # each worker configures logging itself (`logs.configure`)
            access_log=False,  # requests are logged by `web.middleware.RequestLog`, with their ids
        )
    finally:
        if counts_dir is not None:
            shutil.rmtree(counts_dir, ignore_errors=True)


@cli.command("import-json")
def import_json(
    ckan_file: Annotated[Path, argument("CKAN_FILE")],
    allocations: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The seed's allocations.json.")
    ] = None,
) -> None:
    """Import the seed's JSON files (upsert by id).

    CKAN_FILE is the seed's ckan_data.json. Both files are checked whole first: if one is not
    valid, nothing is written."""
    from priorizer.clock import utcnow
    from priorizer.startup import import_files

    settings = load_settings()
    database, queue = open_to_write(settings)
    try:
        report = import_files(database, settings, ckan_file, allocations, now=utcnow(), queue=queue)
    except PriorizerError as error:
        raise fail(error) from error
    finally:
        database.dispose()
    typer.echo(json.dumps(dataclasses.asdict(report)))


@cli.command("export-json")
def export_json(
    directory: Annotated[Path, argument("DIRECTORY")],
) -> None:
    """Export the catalog and leases as the seed's JSON files.

    Writes ckan_data.json and allocations.json (CKAN_DATA_FILE, ALLOCATIONS_FILE) in DIRECTORY:
    the catalog, open leases and copies, read from one consistent snapshot. Never creates or
    migrates a database: with none, says so and exits 1."""
    from priorizer.seed.service import export_seed

    settings = load_settings()
    database = open_to_read(settings)
    try:
        with database.snapshot() as session:
            counts = export_seed(
                session,
                directory=directory,
                ckan_file=settings.ckan_data_file,
                allocations_file=settings.allocations_file,
            )
    finally:
        database.dispose()
    typer.echo(json.dumps(counts))


@cli.command()
def maintain() -> None:
    """Run one maintenance cycle now and print what it did.

    Waits for no other: if another process is running a cycle, says so and exits 1."""
    from priorizer.clock import utcnow
    from priorizer.maintenance.jobs import run_cycle
    from priorizer.maintenance.service import MaintenancePolicy

    settings = load_settings()
    database, queue = open_to_write(settings)
    try:
        policy = MaintenancePolicy.from_settings(settings, queue)
        outcome = run_cycle(database=database, policy=policy, clock=utcnow)
    finally:
        database.dispose()
    if outcome is None:
        typer.echo("another process is running a maintenance cycle; try again later", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(outcome, default=str))


@cli.command()
def reinstate(
    asset_ids: Annotated[list[str], argument("ASSET_ID")],
) -> None:
    """Hand unreachable or withdrawn assets out again.

    Each ASSET_ID goes back in the queue, and its failures are forgotten."""
    _set_states(asset_ids, withdraw=False)


@cli.command()
def withdraw(
    asset_ids: Annotated[list[str], argument("ASSET_ID")],
) -> None:
    """Take assets out of the catalog.

    Each ASSET_ID is never handed out again; its open leases close at the next maintenance
    cycle; its copies and history are kept."""
    _set_states(asset_ids, withdraw=True)


cli_harvest.register(cli)  # listed here, after the catalog's own commands
cli_sources.register(cli)
cli_discovery.register(cli)


def _set_states(asset_ids: list[str], *, withdraw: bool) -> None:
    from priorizer.catalog import service as catalog_service
    from priorizer.clock import utcnow

    database, queue = open_to_write(load_settings())
    try:
        with database.write() as session:
            report = catalog_service.set_states(
                session, asset_ids=asset_ids, withdraw=withdraw, queue=queue, now=utcnow()
            )
    finally:
        database.dispose()
    typer.echo(json.dumps(dataclasses.asdict(report)))
    if report.unknown_ids:
        raise typer.Exit(1)


@cli.command()
def backup(
    file: Annotated[Path, argument("FILE")],
    force: Annotated[
        bool, typer.Option(show_default=False, help="Overwrite FILE if it exists.")
    ] = False,
) -> None:
    """Take a consistent copy of the database.

    Writes it to FILE. It may run while the server serves (SQLite: the online backup API;
    PostgreSQL: pg_dump --format=custom)."""
    from priorizer.backup import backup as take_backup

    _copy_database(take_backup, file, force=force)


@cli.command()
def restore(
    file: Annotated[Path, argument("FILE")],
    force: Annotated[
        bool, typer.Option(show_default=False, help="Replace a database that has content.")
    ] = False,
) -> None:
    """Load a backup into the database, then migrate it.

    FILE is a backup from `priorizer backup`. Stop the server first. A database with assets,
    nodes or allocations is replaced only with --force."""
    from priorizer.backup import restore as load_backup

    _copy_database(load_backup, file, force=force)


def _copy_database(copy: Any, file: Path, *, force: bool) -> None:
    """A backup or a restore of this environment's database, its outcome printed as JSON."""
    settings = load_settings()
    try:
        check_reachable(settings)
        outcome = copy(settings.sqlalchemy_url, file, force=force)
    except PriorizerError as error:
        raise fail(error) from error
    typer.echo(json.dumps(outcome))


@cli.command()
def status(
    url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="A running server's address (e.g. http://127.0.0.1:8002); "
            "without it, the database of this environment is read.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /status as JSON.")] = False,
) -> None:
    """Show where the rescue stands.

    The catalog, copies, leases, nodes and maintenance, from the database or from a running
    server (--url). Never creates or migrates a database. Exits 1 when the system is degraded,
    the server does not answer, or there is no database."""
    from priorizer import status_report

    if url is not None:
        import httpx

        try:
            response = httpx.get(url.rstrip("/") + "/status", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as error:
            # A password in the address stays out of the message (and so does httpx's echo).
            message = f"error: {url} does not answer: {error}".replace(url, mask_password(url))
            typer.echo(message, err=True)
            raise typer.Exit(1) from error
        figures = response.json()
    else:
        from priorizer.clock import utcnow
        from priorizer.status import service as status_service

        settings = load_settings()
        database = open_to_read(settings)
        try:
            with database.read() as session:
                figures = status_service.status_from_database(
                    session, settings=settings, now=utcnow()
                )
        finally:
            database.dispose()
    if as_json:
        typer.echo(json.dumps(figures, default=str, indent=2))
    else:
        status_report.render(figures, source=url or "database")
    if figures["system_health"] != "healthy":
        raise typer.Exit(1)


from priorizer.agent.cli import app as node_app  # noqa: E402 (the node's own commands)

cli.add_typer(node_app, name="node")
cli.command()(simulate)


def main() -> None:
    sys.exit(cli())
