"""`priorizer sources`: the watched sources a running server harvests on a schedule."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from priorizer.cli.support import argument, fail, load_settings, open_to_write
from priorizer.errors import PriorizerError

sources = typer.Typer(
    help="Watch sources: the server harvests them on a schedule.\n\nCKAN portals and DCAT-US "
    "data.json catalogs; see docs/harvest.md.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(cli: typer.Typer) -> None:
    cli.add_typer(sources, name="sources")


def _write(work: Any) -> Any:
    from priorizer.clock import utcnow

    settings = load_settings()
    database, _queue = open_to_write(settings)
    try:
        with database.write() as session:
            return work(session, utcnow())
    except PriorizerError as error:
        raise fail(error) from error
    finally:
        database.dispose()


@sources.command("add")
def add(
    url: Annotated[str, argument("URL")],
    every: Annotated[
        str, typer.Option(metavar="PERIOD", help="How often: 90s, 30m, 6h, 1d, 1w.")
    ] = "6h",
    full_every: Annotated[
        str | None,
        typer.Option(
            metavar="PERIOD",
            help="A full run (noticing removals) at least this often; default 1d.",
        ),
    ] = None,
    organization: Annotated[
        str | None, typer.Option(metavar="NAME", help="CKAN: only this organization.")
    ] = None,
    query: Annotated[
        str | None, typer.Option(metavar="QUERY", help="CKAN: only what this search finds.")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(metavar="KIND", help="ckan or dcat; by default a .json URL is a data.json."),
    ] = None,
) -> None:
    """Watch a CKAN portal or a data.json catalog.

    A running server (`priorizer serve`) harvests it at once, then every PERIOD; its datasets
    that vanish upstream are marked removed and rise to the top."""
    from priorizer.sources import service

    try:
        seconds = service.parse_every(every)
        full = service.parse_every(full_every) if full_every is not None else None
    except PriorizerError as error:
        raise fail(error) from error

    def work(session: Any, now: Any) -> dict[str, Any]:
        source = service.add_source(
            session,
            url=url,
            kind=kind,
            organization=organization,
            query=query,
            every_seconds=seconds,
            full_every_seconds=full,
            now=now,
        )
        return service.view(source)

    typer.echo(json.dumps(_write(work), default=str))


@sources.command("list")
def list_() -> None:
    """List the watched sources.

    Each as a line of JSON: last run, next run, datasets, removed upstream, errors."""
    from priorizer.sources import service

    for source in _write(lambda session, _now: service.list_sources(session)):
        typer.echo(json.dumps(source, default=str))


@sources.command("remove")
def remove(ref: Annotated[str, argument("ID_OR_URL")]) -> None:
    """Stop watching a source, by id or URL.

    Its datasets stay in the catalog."""
    from priorizer.sources import service

    def work(session: Any, _now: Any) -> dict[str, Any]:
        source = service.remove_source(session, ref=ref)
        return {"status": "removed", "id": source.id, "key": source.key}

    typer.echo(json.dumps(_write(work)))
