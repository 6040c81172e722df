"""The discovery commands: `probe` (what is behind the catalog's URLs) and `import-urls`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from priorizer.cli.support import argument, fail, load_settings, open_to_write


def register(cli: typer.Typer) -> None:
    cli.command()(probe)
    cli.command("import-urls")(import_urls)


def probe(
    limit: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="Assets to probe (default PROBE_BATCH).")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, max=1000, help="Overrides PROBE_CONCURRENCY."),
    ] = None,
    host_concurrency: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, max=100, help="Overrides PROBE_HOST_CONCURRENCY."),
    ] = None,
) -> None:
    """Probe what is behind the catalog's URLs.

    Probes assets never probed, then those not probed for PROBE_REFRESH_DAYS. Records each
    one's size, type and status; marks 404 and 410 gone; expands directory listings, FTP
    folders and landing pages into their files. Prints what it did as JSON."""
    from priorizer.clock import utcnow
    from priorizer.discovery.jobs import probe_catalog
    from priorizer.discovery.service import ProbeConfig

    settings = load_settings()
    config = ProbeConfig.from_settings(
        settings, concurrency=concurrency, host_concurrency=host_concurrency
    )
    database, queue = open_to_write(settings)
    try:
        report = probe_catalog(
            database,
            config=config,
            queue=queue,
            limit=limit or settings.probe_batch,
            clock=utcnow,
        )
    finally:
        database.dispose()
    typer.echo(json.dumps(report.as_dict()))


def import_urls(
    file: Annotated[Path, argument("FILE")],
    priority: Annotated[
        int, typer.Option(metavar="N", min=1, max=10, help="For records that give none.")
    ] = 5,
) -> None:
    """Add a list of file URLs to the catalog.

    FILE is a JSON array, JSON lines, CSV with a `url` column, or one URL a line; records may
    give `size_bytes`, `content_type`, `source_page`, `priority` and `dataset_id`. URLs the
    catalog holds keep what they have. A file cut short imports its complete records and says
    how many bytes at its end could not be read."""
    from priorizer.clock import utcnow
    from priorizer.discovery.imports import UrlListError, parse_url_list
    from priorizer.discovery.service import import_url_list

    settings = load_settings()
    try:
        parsed = parse_url_list(file.read_bytes())
    except OSError as error:
        typer.echo(f"error: cannot read {file}: {error.strerror}", err=True)
        raise typer.Exit(1) from error
    except UrlListError as error:
        raise fail(error) from error
    database, queue = open_to_write(settings)
    try:
        with database.write() as session:
            added, known = import_url_list(
                session, records=parsed.records, priority=priority, queue=queue, now=utcnow()
            )
    finally:
        database.dispose()
    typer.echo(
        json.dumps(
            {
                "records": len(parsed.records),
                "added": added,
                "already_known": known,
                "unread_bytes": parsed.unread_bytes,
            }
        )
    )
    if parsed.unread_bytes:
        typer.echo(
            f"warning: the last {parsed.unread_bytes} bytes of {file} are not a complete "
            "record (a file cut short?): not imported",
            err=True,
        )
