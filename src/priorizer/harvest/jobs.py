"""Harvesting a CKAN source into the catalog, page by page, resumably.

A source is a portal with, optionally, an organization and a search query. Its datasets are
listed oldest modification first (`metadata_modified asc, id asc`) and paged by a keyset cursor:
each request asks for datasets modified at or after the last one seen, passing over those at
that instant taken already. Datasets added or modified during the run sort after everything
seen, so they are listed too, and nothing shifts under the cursor (offset paging would skip a
dataset for every one deleted before it).

Each page is mapped (`mapping`), scored (`scoring.policy`) and written in one transaction with
the run's new cursor: a crash or Ctrl-C loses at most the page in flight, and the next run of
the source continues from the cursor. A run that listed the whole source (not `--since` or
`--incremental`) then marks the source's datasets it did not meet as removed upstream: kept,
with their assets, and rescored (the default policy ranks them higher).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from priorizer.catalog import service as catalog_service
from priorizer.db import Database
from priorizer.errors import Conflict
from priorizer.harvest import repo
from priorizer.harvest.ckan import MAX_ROWS, CkanClient
from priorizer.harvest.mapping import map_packages
from priorizer.harvest.models import FAILED, INTERRUPTED, OK, RUNNING, HarvestRun
from priorizer.harvest.paging import KEYSET, Listed, Pager, Stalled
from priorizer.harvest.reader import PageRequest, Reader, prepare
from priorizer.harvest.service import (
    LOCK_NAME,
    SORT,
    Context,
    Source,
    filters,
    lock_key,
    run_view,
    store_page,
)
from priorizer.scoring import jobs as scoring_jobs

log = logging.getLogger(__name__)


def harvest(
    context: Context,
    *,
    client: CkanClient,
    source: Source,
    rows: int = MAX_ROWS,
    since: datetime | None = None,
    incremental: bool = False,
    on_page: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Harvest `source` (continuing its unfinished run, if any); the finished run's record.
    Only one harvest of a source runs at a time: another gets `Conflict`. `on_start` hears
    the run's id once it is recorded: from then on, whatever stops the run is recorded on it."""
    database = context.database
    with database.exclusive(LOCK_NAME, key=lock_key(source.key)) as mine:
        if not mine:
            raise Conflict(f"a harvest of {source.key} is running already")
        run_id, _ = start_run(context, source=source, since=since, incremental=incremental)
        try:
            if on_start is not None:
                on_start(run_id)
            whole = _list_pages(
                context, client=client, source=source, run_id=run_id, rows=rows, on_page=on_page
            )
            return finish_run(context, source=source, run_id=run_id, listing=whole)
        except BaseException as error:  # Ctrl-C too: the run is continued next time
            stop_run(database, run_id, error, clock=context.clock)
            raise


def start_run(
    context: Context, *, source: Source, since: datetime | None, incremental: bool
) -> tuple[int, datetime]:
    """The run to go on with (the source's unfinished one, or a new one): its id and start."""
    now = context.clock()
    with context.database.write() as session:
        run = repo.unfinished(session, source=source.key)
        if run is not None:
            log.info("continuing harvest run %d of %s", run.id, source.key)
            run.state, run.updated_at, run.error = RUNNING, now, None
            return run.id, run.started_at
        if since is None and incremental:
            previous = repo.last_ok(session, source=source.key)
            since = previous.newest_modified if previous is not None else None
        run = HarvestRun(
            source=source.key,
            url=source.url,
            organization=source.organization,
            query=source.query,
            since=since,
            state=RUNNING,
            started_at=now,
            updated_at=now,
            cursor_skip=0,
            pages=0,
            datasets=0,
            assets_created=0,
            assets_updated=0,
            shared_urls=0,
            retries=0,
            seconds=0.0,
            skipped={},
        )
        session.add(run)
        session.flush()
        return run.id, run.started_at


def _list_pages(
    context: Context,
    *,
    client: CkanClient,
    source: Source,
    run_id: int,
    rows: int,
    on_page: Callable[[dict[str, Any]], None] | None,
) -> bool:
    """List the source, page by page, storing as it goes; whether the listing was whole."""
    with context.database.read() as session:
        run = repo.get(session, run_id=run_id)
        assert run is not None
        cursor, skip, since, first = run.cursor_modified, run.cursor_skip, run.since, run.pages == 0
        started_at, mode, note = run.started_at, run.paging, run.paging_note

    def request(cursor: str | None, skip: int) -> PageRequest:
        # Offset paging (`pager.mode`) has no cursor: then `skip` is the offset.
        fq = filters(source, cursor=cursor, since=since)
        return PageRequest(
            fq,
            source.query,
            SORT,
            rows,
            cursor,
            skip,
            context.clock(),
            context.queue,
            source.key,
            started_at,
        )

    # A worker process reads (fetches, parses, maps) the next page while this one writes the
    # page before: where to go next comes from the listing alone, before anything is stored.
    pager = Pager(rows, mode=mode or KEYSET, cursor=cursor, skip=skip, note=note)
    reader = Reader(client, context.policy)
    try:
        reader.ask(request(cursor, skip))
        while True:
            started = time.perf_counter()
            page = reader.answer()
            step = pager.advance(
                Listed(page.entries, page.count, page.cursor, page.skip, page.results)
            )
            if not step.done:
                reader.ask(request(step.cursor, step.skip))
            if page.prepared is not None and step.keep:
                with context.database.write() as session:
                    view = store_page(
                        context,
                        session,
                        run_id=run_id,
                        page=page.prepared.keeping(step.keep),
                        cursor=(pager.cursor, pager.skip),
                        expected=page.count if first else None,
                        retries=page.retries,
                        seconds=time.perf_counter() - started,
                        paging=(pager.mode, pager.note),
                    )
                first = False
                if on_page is not None:
                    on_page(view)
            if step.done:
                return pager.complete
    finally:
        reader.close()


def import_packages(
    context: Context,
    *,
    packages: list[Any],
    source: Source,
    on_page: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Store packages read from saved CKAN answers, as a harvest would, a page at a time (one
    run; nothing is marked removed, since a file need not list a whole source)."""
    run_id, started_at = start_run(context, source=source, since=None, incremental=False)
    try:
        for start in range(0, len(packages), MAX_ROWS):
            begun = time.perf_counter()
            page = prepare(
                map_packages(packages[start : start + MAX_ROWS]),
                policy=context.policy,
                queue=context.queue,
                now=context.clock(),
                source=source.key,
                harvested_at=started_at,
            )
            with context.database.write() as session:
                view = store_page(
                    context,
                    session,
                    run_id=run_id,
                    page=page,
                    cursor=(None, start + MAX_ROWS),
                    expected=len(packages) if start == 0 else None,
                    retries=0,
                    seconds=time.perf_counter() - begun,
                )
            if on_page is not None:
                on_page(view)
        return finish_run(context, source=source, run_id=run_id, listing=False)
    except BaseException as error:
        stop_run(context.database, run_id, error, clock=context.clock)
        raise


def finish_run(context: Context, *, source: Source, run_id: int, listing: bool) -> dict[str, Any]:
    """After a full listing (not incremental), mark what it did not meet as removed upstream
    and rescore that; close the run."""
    now = context.clock()
    with context.database.read() as session:
        run = repo.get(session, run_id=run_id)
        assert run is not None
        full, started_at = listing and run.since is None, run.started_at
    removed: list[str] = []
    if full:
        with context.database.write() as session:
            removed = catalog_service.mark_unlisted_removed(
                session, source=source.key, listed_since=started_at, now=now
            )
        scoring_jobs.rescore(
            context.database,
            policy=context.policy,
            queue=context.queue,
            now=now,
            dataset_ids=removed,
        )
    with context.database.write() as session:
        run = repo.get(session, run_id=run_id, for_update=True)
        assert run is not None
        run.state, run.finished_at, run.updated_at = OK, now, now
        run.removed = len(removed) if full else None
        view = run_view(run)
    log.info("harvest of %s done: %s", source.key, view)
    if removed and context.on_removed is not None:
        try:
            context.on_removed(view, removed)
        except Exception:  # an alert that cannot be sent must not fail the harvest
            log.exception("could not send the removal alert of harvest run %d", run_id)
    return view


def stop_run(
    database: Database, run_id: int, error: BaseException, *, clock: Callable[[], datetime]
) -> None:
    # Whatever stopped it, the next run of the source continues from its cursor.
    message = "interrupted" if isinstance(error, KeyboardInterrupt) else _describe(error)
    # A portal that cannot be paged would stall the same way again: the run is not continued.
    state = FAILED if isinstance(error, Stalled) else INTERRUPTED
    try:
        with database.write() as session:
            run = repo.get(session, run_id=run_id, for_update=True)
            if run is not None:
                run.state, run.error, run.updated_at = state, message, clock()
                # The request that stopped it was tried again too: those count.
                retries = getattr(error, "retries", 0)  # CkanError's, DataJsonError's
                run.retries += retries if isinstance(retries, int) else 0
    except Exception:
        log.exception("could not record that harvest run %d stopped", run_id)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]
