"""The `priorizer` commands that fill and score the catalog from CKAN: harvest, import-ckan
and rescore (registered on the main command by `register`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from priorizer.cli.support import argument, fail, load_settings, open_to_write
from priorizer.config import Settings
from priorizer.errors import PriorizerError


def register(cli: typer.Typer) -> None:
    cli.command()(harvest)
    cli.command("import-ckan")(import_ckan)
    cli.command()(rescore)


def _harvest_context(settings: Settings) -> Any:
    """The database, policies and clock harvest commands work with (see `harvest.service`)."""
    from priorizer.clock import utcnow
    from priorizer.harvest.service import Context
    from priorizer.scoring import policy as scoring_policy

    try:
        policy = scoring_policy.load(settings.scoring_policy_file)
    except PriorizerError as error:
        raise fail(error) from error
    database, queue = open_to_write(settings)
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


def harvest(
    url: Annotated[str, argument("URL")],
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
    kind: Annotated[
        str | None,
        typer.Option(
            metavar="KIND",
            help="ckan or dcat (a data.json catalog); by default, a URL ending in .json is a "
            "data.json and any other a CKAN portal.",
        ),
    ] = None,
) -> None:
    """Harvest a CKAN portal or a data.json into the catalog.

    URL is the portal's site or its API's address, or a DCAT-US data.json's. An interrupted harvest
    (a crash, Ctrl-C, the portal down) is continued by the next run of the same source; a full
    one marks the datasets that vanished from it as removed upstream. A portal that ignores the
    search's filter or sort is paged by offsets instead; one that cannot be paged at all stops
    the run with an error, keeping what was stored."""
    from contextlib import nullcontext

    from priorizer.harvest import dispatch
    from priorizer.harvest.ckan import CkanError
    from priorizer.harvest.datajson import DataJsonError
    from priorizer.harvest.paging import Stalled

    try:
        source = dispatch.source_for(url, kind=kind, organization=organization, query=query)
    except PriorizerError as error:
        raise fail(error) from error
    settings = load_settings()
    context = _harvest_context(settings)
    bar = _progress_bar() if progress else nullcontext()
    try:
        with bar:
            outcome = dispatch.harvest(
                context,
                source,
                rows=rows,
                since=since.replace(tzinfo=since.tzinfo or UTC) if since else None,
                incremental=incremental,
                timeout_seconds=timeout,
                attempts=attempts,
                on_page=_follow(bar, source.key) if progress else None,
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: the next harvest of this source continues from here", err=True)
        raise typer.Exit(130) from None
    except Stalled as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error
    except (CkanError, DataJsonError) as error:
        typer.echo(f"error: {error} (the next harvest of this source continues)", err=True)
        raise typer.Exit(1) from error
    except PriorizerError as error:
        raise fail(error) from error
    finally:
        context.database.dispose()
    typer.echo(json.dumps(outcome, default=str))


def import_ckan(
    files: Annotated[list[Path], argument("FILE")],
) -> None:
    """Import saved CKAN answers as a harvest would.

    Each FILE holds a package_search or package_show answer (.json, or .json.gz). Every file is
    read and checked first: if one is not valid, nothing is written."""
    import gzip

    import orjson

    from priorizer.harvest.jobs import import_packages
    from priorizer.harvest.mapping import packages_in
    from priorizer.harvest.service import Source

    packages: list[Any] = []
    for path in files:
        try:
            data = path.read_bytes()
            document = orjson.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
        except OSError as error:
            raise fail(PriorizerError(f"cannot read {path}: {error.strerror}")) from error
        except (orjson.JSONDecodeError, gzip.BadGzipFile, EOFError) as error:
            raise fail(PriorizerError(f"{path} is not valid JSON: {error}")) from error
        found = packages_in(document)
        if found is None:
            raise fail(PriorizerError(f"{path} holds no CKAN packages"))
        packages += found
    settings = load_settings()
    context = _harvest_context(settings)
    source = Source(url="file:" + ",".join(sorted(path.name for path in files)))
    try:
        outcome = import_packages(context, packages=packages, source=source)
    finally:
        context.database.dispose()
    typer.echo(json.dumps(outcome, default=str))


def rescore() -> None:
    """Apply the scoring policy to the whole catalog.

    The policy is SCORING_POLICY_FILE's, or the default one; manual priorities stay."""
    import dataclasses as dc

    from priorizer.scoring.jobs import rescore as rescore_catalog

    settings = load_settings()
    context = _harvest_context(settings)
    try:
        report = rescore_catalog(
            context.database, policy=context.policy, queue=context.queue, now=context.clock()
        )
    finally:
        context.database.dispose()
    typer.echo(json.dumps(dc.asdict(report)))
