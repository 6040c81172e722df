"""One entry to harvest any source: a CKAN portal or a DCAT-US `data.json` catalog.

`priorizer harvest URL`, `POST /harvest` (in a thread of its own: `start_in_background`) and
the scheduler's watched sources all come here.
A URL whose path ends in `.json` is a data.json catalog (`data.json`, `catalog.json`, …);
anything else is a CKAN portal (its site or its API). `kind` overrides the guess.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from priorizer.errors import Conflict, Invalid
from priorizer.harvest import jobs, service
from priorizer.harvest.ckan import MAX_ROWS, CkanClient
from priorizer.harvest.datajson import DataJsonOptions
from priorizer.harvest.dcat_run import harvest_datajson

log = logging.getLogger(__name__)

CKAN = "ckan"
DCAT = "dcat"
KINDS = (CKAN, DCAT)


def kind_of(url: str) -> str:
    """ "dcat" for a data.json catalog, "ckan" for a portal, from the URL alone."""
    path = urlsplit(url.strip()).path.lower().rstrip("/")
    return DCAT if path.endswith(".json") else CKAN


def source_for(
    url: str,
    *,
    kind: str | None = None,
    organization: str | None = None,
    query: str | None = None,
) -> service.Source:
    """The source a URL names; a data.json takes no organization or query (it is read whole)."""
    kind = kind or kind_of(url)
    if kind not in KINDS:
        raise Invalid(f"unknown kind of source {kind!r}: ckan or dcat")
    if kind == DCAT and (organization or query):
        raise Invalid(
            "a data.json catalog is read whole: it takes no organization or query "
            "(harvest its whole URL, or name a CKAN portal)"
        )
    return service.Source(url=url.strip(), organization=organization, query=query, kind=kind)


def harvest(
    context: service.Context,
    source: service.Source,
    *,
    since: datetime | None = None,
    incremental: bool = False,
    rows: int = MAX_ROWS,
    timeout_seconds: float = 30.0,
    attempts: int = 6,
    backoff_seconds: float = 1.0,
    on_page: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Harvest `source`; the finished run's record. A data.json is always read whole, so
    `since` and `incremental` do not apply to it (each run notices removals)."""
    if source.kind == DCAT:
        options = DataJsonOptions(
            source.url,
            timeout_seconds=timeout_seconds,
            attempts=attempts,
            backoff_seconds=backoff_seconds,
            max_backoff_seconds=max(backoff_seconds, 60.0),
        )
        return harvest_datajson(context, options=options, on_page=on_page, on_start=on_start)
    with CkanClient(
        source.url,
        timeout_seconds=timeout_seconds,
        attempts=attempts,
        backoff_seconds=backoff_seconds,
        max_backoff_seconds=max(backoff_seconds, 60.0),
    ) as client:
        return jobs.harvest(
            context,
            client=client,
            source=source,
            rows=rows,
            since=since,
            incremental=incremental,
            on_page=on_page,
            on_start=on_start,
        )


def start_in_background(
    harvests: dict[str, threading.Thread],
    lock: threading.Lock,
    context: service.Context,
    source: service.Source,
    *,
    since: datetime | None,
    incremental: bool,
) -> int:
    """Harvest `source` in a thread of its own (recorded in `harvests`, by source key, under
    `lock`); the run's id once it is recorded, or what kept it from starting (`Conflict` when
    this process or another one harvests that source already)."""
    started: Future[int] = Future()
    with lock:
        running = harvests.get(source.key)
        if running is not None and running.is_alive():
            raise Conflict(f"a harvest of {source.key} is running already")
        worker = threading.Thread(
            target=run_in_background,
            args=(context, source, started),
            kwargs={"since": since, "incremental": incremental},
            name=f"harvest {source.key}",
            daemon=True,
        )
        harvests[source.key] = worker
        worker.start()
    return started.result()


def run_in_background(
    context: service.Context,
    source: service.Source,
    started: Future[int],
    *,
    since: datetime | None,
    incremental: bool,
) -> None:
    try:
        harvest(context, source, since=since, incremental=incremental, on_start=started.set_result)
    except Exception as error:
        if not started.done():  # not started: the request answers with it
            started.set_exception(error)
        else:  # recorded on the run (interrupted, with its error) for /status
            log.exception("harvest of %s stopped", source.key)
    finally:  # whatever happened, the request waiting for the start gets an answer
        if not started.done():
            started.set_exception(RuntimeError(f"the harvest of {source.key} did not start"))
