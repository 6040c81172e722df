"""The `priorizer` command."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from priorizer import logs
from priorizer.config import Settings, describe_settings_error
from priorizer.errors import PriorizerError

if TYPE_CHECKING:
    from priorizer.allocation.policy import QueuePolicy
    from priorizer.db import Database

cli = typer.Typer(
    help="Priorizer: which public science data gets rescued first, and by whom.",
    no_args_is_help=True,
    add_completion=False,
    # Plain help, as click writes it: paragraphs wrapped to the terminal, names in capitals
    # (Typer's rich panels broke lines mid-sentence and tagged each option with its type).
    rich_markup_mode=None,
)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.of(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        typer.echo(describe_settings_error(error), err=True)
        raise typer.Exit(2) from error
    logs.configure(settings)
    return settings


def _argument(name: str) -> Any:
    """A positional argument, named in capitals and described in its command's text (Typer
    would list it again, tagged with its Python type)."""
    return typer.Argument(metavar=name, hidden=True, show_default=False)


def _fail(error: PriorizerError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)


def _open_to_write(settings: Settings) -> tuple[Database, QueuePolicy]:
    """The database, migrated (quietly); one line and exit 1 when it cannot be opened."""
    from priorizer.startup import open_for_command

    try:
        return open_for_command(settings)
    except PriorizerError as error:
        raise _fail(error) from error


def _reachable(settings: Settings) -> None:
    """A PostgreSQL server that does not answer is one line naming DATABASE_URL, before a client
    tool says so at length."""
    from priorizer.db import sqlite_path
    from priorizer.startup import schema_revision

    if sqlite_path(settings.sqlalchemy_url) is None:
        schema_revision(settings)


def _open_to_read(settings: Settings) -> Database:
    """The database as it is, for commands that only read: never created nor migrated."""
    from priorizer.startup import open_to_read

    try:
        return open_to_read(settings)
    except PriorizerError as error:
        raise _fail(error) from error


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
    from priorizer.security import is_loopback
    from priorizer.startup import prepare

    settings = _settings(host=host, port=port, workers=workers)
    if not is_loopback(settings.host) and settings.admin_token is None and not settings.insecure:
        typer.echo(
            f"error: refusing to listen on {settings.host} with no PRIORIZER_ADMIN_TOKEN: anyone "
            "who reaches it could run admin actions. Set PRIORIZER_ADMIN_TOKEN (16+ "
            "characters), listen on 127.0.0.1, or set PRIORIZER_INSECURE=1 to accept the risk.",
            err=True,
        )
        raise typer.Exit(2)
    try:
        prepare(settings, demo=demo)
    except PriorizerError as error:
        raise _fail(error) from error
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
            "priorizer.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
            log_config=None,  # each worker configures logging itself (`logs.configure`)
            access_log=False,  # requests are logged by `logs.RequestLog`, with their ids
        )
    finally:
        if counts_dir is not None:
            shutil.rmtree(counts_dir, ignore_errors=True)


@cli.command("import-json")
def import_json(
    ckan_file: Annotated[Path, _argument("CKAN_FILE")],
    allocations: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The seed's allocations.json.")
    ] = None,
) -> None:
    """Import the seed's JSON files (upsert by id).

    CKAN_FILE is the seed's ckan_data.json. Both files are checked whole first: if one is not
    valid, nothing is written."""
    from priorizer.app import utcnow
    from priorizer.startup import import_files

    settings = _settings()
    database, queue = _open_to_write(settings)
    try:
        report = import_files(database, settings, ckan_file, allocations, now=utcnow(), queue=queue)
    except PriorizerError as error:
        raise _fail(error) from error
    finally:
        database.dispose()
    typer.echo(json.dumps(dataclasses.asdict(report)))


@cli.command("export-json")
def export_json(
    directory: Annotated[Path, _argument("DIRECTORY")],
) -> None:
    """Export the catalog and leases as the seed's JSON files.

    Writes ckan_data.json and allocations.json (CKAN_DATA_FILE, ALLOCATIONS_FILE) in DIRECTORY:
    the catalog, open leases and copies, read from one consistent snapshot. Never creates or
    migrates a database: with none, says so and exits 1."""
    from priorizer.seed.service import export_seed

    settings = _settings()
    database = _open_to_read(settings)
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
    from priorizer.app import utcnow
    from priorizer.maintenance.service import MaintenancePolicy, run_cycle

    settings = _settings()
    database, queue = _open_to_write(settings)
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
    asset_ids: Annotated[list[str], _argument("ASSET_ID")],
) -> None:
    """Hand unreachable or withdrawn assets out again.

    Each ASSET_ID goes back in the queue, and its failures are forgotten."""
    _set_states(asset_ids, withdraw=False)


@cli.command()
def withdraw(
    asset_ids: Annotated[list[str], _argument("ASSET_ID")],
) -> None:
    """Take assets out of the catalog.

    Each ASSET_ID is never handed out again; its open leases close at the next maintenance
    cycle; its copies and history are kept."""
    _set_states(asset_ids, withdraw=True)


def _set_states(asset_ids: list[str], *, withdraw: bool) -> None:
    from priorizer.app import utcnow
    from priorizer.catalog import service as catalog_service

    database, queue = _open_to_write(_settings())
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


def _harvest_context(settings: Settings) -> Any:
    """The database, policies and clock harvest commands work with (see `harvest.service`)."""
    from priorizer.app import utcnow
    from priorizer.harvest.service import Context
    from priorizer.scoring import policy as scoring_policy

    try:
        policy = scoring_policy.load(settings.scoring_policy_file)
    except PriorizerError as error:
        raise _fail(error) from error
    database, queue = _open_to_write(settings)
    return Context(database=database, policy=policy, queue=queue, clock=utcnow)


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} datasets/s · {task.fields[assets]} assets"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )


def _follow(progress: Any, description: str) -> Any:
    """An `on_page` callback that moves a progress bar (total: the portal's count)."""
    task = progress.add_task(description, total=None, rate="-", assets=0)

    def on_page(view: dict[str, Any]) -> None:
        progress.update(
            task,
            total=view["expected"],
            completed=view["datasets"],
            rate=view["datasets_per_second"] or "-",
            assets=view["assets_created"] + view["assets_updated"],
        )

    return on_page


@cli.command()
def harvest(
    url: Annotated[str, _argument("URL")],
    organization: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Only this organization's datasets (its CKAN name)."),
    ] = None,
    query: Annotated[
        str | None, typer.Option(metavar="QUERY", help="Only datasets this search finds.")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            metavar="DATE",
            help="Only datasets modified since then (UTC; 2024-01-31 or 2024-01-31T08:00:00); "
            "nothing is marked removed.",
        ),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(
            show_default=False,
            help="Only datasets modified since this source's last complete run.",
        ),
    ] = False,
    rows: Annotated[
        int, typer.Option(metavar="N", min=1, max=1000, help="Datasets per request.")
    ] = 1000,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", min=0.1, help="Seconds per request.")
    ] = 30.0,
    attempts: Annotated[int, typer.Option(metavar="N", min=1, help="Tries per request.")] = 6,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Harvest a CKAN portal into the catalog.

    URL is the portal's site or its API's address. An interrupted harvest (a crash, Ctrl-C, the
    portal down) is continued by the next run of the same source; a full one marks the datasets
    that vanished from it as removed upstream."""
    from contextlib import nullcontext

    from priorizer.harvest.ckan import CkanClient, CkanError
    from priorizer.harvest.service import Source
    from priorizer.harvest.service import harvest as harvest_source

    settings = _settings()
    context = _harvest_context(settings)
    source = Source(url=url, organization=organization, query=query)
    bar = _progress_bar() if progress else nullcontext()
    try:
        with CkanClient(url, timeout_seconds=timeout, attempts=attempts) as client, bar:
            on_page = _follow(bar, source.key) if progress else None
            outcome = harvest_source(
                context,
                client=client,
                source=source,
                rows=rows,
                since=since.replace(tzinfo=since.tzinfo or UTC) if since else None,
                incremental=incremental,
                on_page=on_page,
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: the next harvest of this source continues from here", err=True)
        raise typer.Exit(130) from None
    except CkanError as error:
        typer.echo(f"error: {error} (the next harvest of this source continues)", err=True)
        raise typer.Exit(1) from error
    except PriorizerError as error:
        raise _fail(error) from error
    finally:
        context.database.dispose()
    typer.echo(json.dumps(outcome, default=str))


@cli.command("import-ckan")
def import_ckan(
    files: Annotated[list[Path], _argument("FILE")],
) -> None:
    """Import saved CKAN answers as a harvest would.

    Each FILE holds a package_search or package_show answer (.json, or .json.gz). Every file is
    read and checked first: if one is not valid, nothing is written."""
    import gzip

    import orjson

    from priorizer.harvest.mapping import packages_in
    from priorizer.harvest.service import Source, import_packages

    packages: list[Any] = []
    for path in files:
        try:
            data = path.read_bytes()
            document = orjson.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
        except OSError as error:
            raise _fail(PriorizerError(f"cannot read {path}: {error.strerror}")) from error
        except (orjson.JSONDecodeError, gzip.BadGzipFile, EOFError) as error:
            raise _fail(PriorizerError(f"{path} is not valid JSON: {error}")) from error
        found = packages_in(document)
        if found is None:
            raise _fail(PriorizerError(f"{path} holds no CKAN packages"))
        packages += found
    settings = _settings()
    context = _harvest_context(settings)
    source = Source(url="file:" + ",".join(sorted(path.name for path in files)))
    try:
        outcome = import_packages(context, packages=packages, source=source)
    finally:
        context.database.dispose()
    typer.echo(json.dumps(outcome, default=str))


@cli.command()
def rescore() -> None:
    """Apply the scoring policy to the whole catalog.

    The policy is SCORING_POLICY_FILE's, or the default one; manual priorities stay."""
    import dataclasses as dc

    from priorizer.scoring.service import rescore as rescore_catalog

    settings = _settings()
    context = _harvest_context(settings)
    try:
        report = rescore_catalog(
            context.database, policy=context.policy, queue=context.queue, now=context.clock()
        )
    finally:
        context.database.dispose()
    typer.echo(json.dumps(dc.asdict(report)))


@cli.command()
def backup(
    file: Annotated[Path, _argument("FILE")],
    force: Annotated[
        bool, typer.Option(show_default=False, help="Overwrite FILE if it exists.")
    ] = False,
) -> None:
    """Take a consistent copy of the database.

    Writes it to FILE. It may run while the server serves (SQLite: the online backup API;
    PostgreSQL: pg_dump --format=custom)."""
    from priorizer.backup import backup as take_backup

    settings = _settings()
    try:
        _reachable(settings)
        outcome = take_backup(settings.sqlalchemy_url, file, force=force)
    except PriorizerError as error:
        raise _fail(error) from error
    typer.echo(json.dumps(outcome))


@cli.command()
def restore(
    file: Annotated[Path, _argument("FILE")],
    force: Annotated[
        bool, typer.Option(show_default=False, help="Replace a database that has content.")
    ] = False,
) -> None:
    """Load a backup into the database, then migrate it.

    FILE is a backup from `priorizer backup`. Stop the server first. A database with assets,
    nodes or allocations is replaced only with --force."""
    from priorizer.backup import restore as load_backup

    settings = _settings()
    try:
        _reachable(settings)
        outcome = load_backup(settings.sqlalchemy_url, file, force=force)
    except PriorizerError as error:
        raise _fail(error) from error
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
            typer.echo(f"error: {url} does not answer: {error}", err=True)
            raise typer.Exit(1) from error
        figures = response.json()
    else:
        from priorizer.app import utcnow
        from priorizer.system import service as system_service

        settings = _settings()
        database = _open_to_read(settings)
        try:
            with database.read() as session:
                figures = system_service.status_from_database(
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


def main() -> None:
    sys.exit(cli())
