"""The `priorizer` command."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from priorizer import logs
from priorizer.config import Settings, describe_settings_error
from priorizer.errors import PriorizerError
from priorizer.simulate.command import simulate

cli = typer.Typer(
    help="Priorizer: which public science data gets rescued first, and by whom.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings(**overrides: object) -> Settings:
    try:
        settings = Settings.of(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        typer.echo(describe_settings_error(error), err=True)
        raise typer.Exit(2) from error
    logs.configure(settings)
    return settings


def _fail(error: PriorizerError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)


@cli.command()
def serve(
    demo: Annotated[
        bool, typer.Option(help="Load a small demo catalog if the catalog is empty.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Overrides PRIORIZER_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides PRIORIZER_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Overrides PRIORIZER_WORKERS.")] = None,
) -> None:
    """Migrate the database, load the seed files into an empty one, and serve the API."""
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
    ckan_file: Annotated[Path, typer.Argument(help="The seed's ckan_data.json.")],
    allocations: Annotated[Path | None, typer.Option(help="The seed's allocations.json.")] = None,
) -> None:
    """Import the seed's JSON files (upsert by id; nothing is written if a file is bad)."""
    from priorizer.app import utcnow
    from priorizer.startup import import_files, open_for_command

    settings = _settings()
    database, queue = open_for_command(settings)
    try:
        report = import_files(database, settings, ckan_file, allocations, now=utcnow(), queue=queue)
    except PriorizerError as error:
        raise _fail(error) from error
    finally:
        database.dispose()
    typer.echo(json.dumps(dataclasses.asdict(report)))


@cli.command("export-json")
def export_json(
    directory: Annotated[Path, typer.Argument(help="Where to write the files.")],
) -> None:
    """Write the catalog and open leases/copies in the seed's JSON shapes (one snapshot)."""
    from priorizer.seed.service import export_seed
    from priorizer.startup import open_for_command

    settings = _settings()
    database, _queue = open_for_command(settings)
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
    """Run one maintenance cycle now and print what it did (waits for none: if another
    process is running a cycle, says so and exits 1)."""
    from priorizer.app import utcnow
    from priorizer.maintenance.service import MaintenancePolicy, run_cycle
    from priorizer.startup import open_for_command

    settings = _settings()
    database, queue = open_for_command(settings)
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
    asset_ids: Annotated[list[str], typer.Argument(help="Assets to hand out again.")],
) -> None:
    """Put unreachable or withdrawn assets back in the queue, forgetting their failures."""
    _set_states(asset_ids, withdraw=False)


@cli.command()
def withdraw(
    asset_ids: Annotated[list[str], typer.Argument(help="Assets to take out of the catalog.")],
) -> None:
    """Take assets out of the catalog: never handed out again; open leases close at the
    next maintenance cycle; copies and history are kept."""
    _set_states(asset_ids, withdraw=True)


def _set_states(asset_ids: list[str], *, withdraw: bool) -> None:
    from priorizer.app import utcnow
    from priorizer.catalog import service as catalog_service
    from priorizer.startup import open_for_command

    database, queue = open_for_command(_settings())
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
    from priorizer.startup import open_for_command

    try:
        policy = scoring_policy.load(settings.scoring_policy_file)
    except PriorizerError as error:
        raise _fail(error) from error
    database, queue = open_for_command(settings)
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
    url: Annotated[str, typer.Argument(help="The portal: its site or its API URL.")],
    organization: Annotated[
        str | None, typer.Option(help="Only this organization's datasets (its CKAN name).")
    ] = None,
    query: Annotated[str | None, typer.Option(help="Only datasets this search finds.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="Only datasets modified since (UTC); nothing is marked removed."),
    ] = None,
    incremental: Annotated[
        bool,
        typer.Option(help="Only datasets modified since this source's last complete run."),
    ] = False,
    rows: Annotated[int, typer.Option(min=1, max=1000, help="Datasets per request.")] = 1000,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per request.")] = 30.0,
    attempts: Annotated[int, typer.Option(min=1, help="Tries per request.")] = 6,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Harvest a CKAN portal into the catalog. An interrupted harvest (crash, Ctrl-C, the portal
    down) is continued by the next run of the same source; a full one marks datasets that
    vanished from it as removed upstream."""
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
    files: Annotated[
        list[Path], typer.Argument(help="Saved package_search/package_show JSON (or .json.gz).")
    ],
) -> None:
    """Import saved CKAN answers as a harvest would. Every file is read and checked first: if
    one is not valid, nothing is written."""
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
    """Apply the scoring policy (SCORING_POLICY_FILE, or the default) to the whole catalog;
    manual priorities stay."""
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
    file: Annotated[Path, typer.Argument(help="Where to write the backup.")],
    force: Annotated[bool, typer.Option(help="Overwrite FILE if it exists.")] = False,
) -> None:
    """A consistent copy of the database, taken while the server serves (SQLite: the online
    backup API; PostgreSQL: pg_dump --format=custom)."""
    from priorizer.backup import backup as take_backup

    settings = _settings()
    try:
        outcome = take_backup(settings.sqlalchemy_url, file, force=force)
    except PriorizerError as error:
        raise _fail(error) from error
    typer.echo(json.dumps(outcome))


@cli.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A backup from `priorizer backup`.")],
    force: Annotated[bool, typer.Option(help="Replace a database that has content.")] = False,
) -> None:
    """Load a backup into the database (stop the server first), then migrate it. A database
    with assets, nodes or allocations is replaced only with --force."""
    from priorizer.backup import restore as load_backup

    settings = _settings()
    try:
        outcome = load_backup(settings.sqlalchemy_url, file, force=force)
    except PriorizerError as error:
        raise _fail(error) from error
    typer.echo(json.dumps(outcome))


@cli.command()
def status(
    url: Annotated[
        str | None,
        typer.Option(
            help="A running server's address (e.g. http://127.0.0.1:8002); "
            "without it, the database of this environment is read."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print GET /status as JSON.")] = False,
) -> None:
    """Where the rescue stands: catalog, copies, leases, nodes and maintenance. Exits 1 when
    the system is degraded (or the server does not answer)."""
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
        from priorizer.startup import open_for_command
        from priorizer.system import service as system_service

        settings = _settings()
        database, _queue = open_for_command(settings)
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


cli.command()(simulate)


def main() -> None:
    sys.exit(cli())
