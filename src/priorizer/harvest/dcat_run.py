"""Harvesting a DCAT-US `data.json` catalog into the catalog, as a stream.

A worker process reads the catalog (`datajson`, ijson over the HTTP stream), maps each batch
of datasets (`dcat`) and scores it (`reader.prepare`), while this one writes the batch before,
each in one transaction with the run's counts (`service.store_page`). Every run lists the whole
catalog, so a run that read it to the end marks the source's datasets it did not meet as
removed upstream, as a full CKAN run does. A run stopped midway is continued by the next one,
which reads the catalog again from the start (a data.json cannot be asked for a part of itself).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from priorizer.errors import Conflict
from priorizer.harvest import jobs, service
from priorizer.harvest.datajson import DataJsonError, DataJsonOptions, open_catalog
from priorizer.harvest.dcat import DcatMapped, map_datasets
from priorizer.harvest.reader import Prepared, prepare, worker_context
from priorizer.queue.policy import QueuePolicy
from priorizer.scoring.policy import Policy

log = logging.getLogger(__name__)

BATCH = 500  # datasets per transaction


@dataclass(slots=True)
class _Batch:
    prepared: Prepared
    pages: int
    retries: int
    seconds: float


def harvest_datajson(
    context: service.Context,
    *,
    options: DataJsonOptions,
    batch: int = BATCH,
    on_page: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Harvest the data.json at `options.url`; the finished run's record. One harvest of a
    catalog at a time: another gets `Conflict`."""
    source = service.Source(url=options.url, kind="dcat")
    database = context.database
    with database.exclusive(service.LOCK_NAME, key=service.lock_key(source.key)) as mine:
        if not mine:
            raise Conflict(f"a harvest of {source.key} is running already")
        run_id, started_at = jobs.start_run(context, source=source, since=None, incremental=False)
        try:
            if on_start is not None:
                on_start(run_id)
            first = True
            for read in _read_ahead(context, options, source.key, started_at, batch):
                with database.write() as session:
                    view = service.store_page(
                        context,
                        session,
                        run_id=run_id,
                        page=read.prepared,
                        cursor=(None, 0),
                        expected=None,
                        retries=read.retries if first else 0,
                        seconds=read.seconds,
                        paging=("stream", None),
                        pages_to_discover=read.pages,
                    )
                first = False
                if on_page is not None:
                    on_page(view)
            return jobs.finish_run(context, source=source, run_id=run_id, listing=True)
        except BaseException as error:
            jobs.stop_run(database, run_id, error, clock=context.clock)
            raise


def _read_ahead(
    context: service.Context,
    options: DataJsonOptions,
    source_key: str,
    started_at: datetime,
    batch: int,
) -> Iterator[_Batch]:
    """The catalog's batches, read, mapped and scored by a worker process (the pipe between
    holds a batch or so ahead) while this process writes: the two use both cores."""
    workers = worker_context()
    mine, theirs = workers.Pipe(duplex=False)
    reader = workers.Process(  # type: ignore[attr-defined]
        target=_serve_batches,
        args=(theirs, options, context.policy, context.queue, context.clock()),
        kwargs={"source_key": source_key, "started_at": started_at, "batch": batch},
        name="priorizer-datajson-reader",
        daemon=True,
    )
    reader.start()
    theirs.close()
    try:
        while True:
            try:
                item = mine.recv()
            except EOFError as error:
                raise RuntimeError("the data.json reader process stopped") from error
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        reader.terminate()
        reader.join(timeout=5)
        mine.close()


def _serve_batches(
    connection: Any,
    options: DataJsonOptions,
    policy: Policy,
    queue: QueuePolicy,
    now: datetime,
    *,
    source_key: str,
    started_at: datetime,
    batch: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harvest decides, and stops this worker
    try:
        for read in _batches(options, policy, queue, now, source_key, started_at, batch):
            connection.send(read)
        connection.send(None)
    except Exception as error:
        try:
            connection.send(error)
        except Exception:  # an error that does not pickle: its words do
            connection.send(RuntimeError(f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def _batches(
    options: DataJsonOptions,
    policy: Policy,
    queue: QueuePolicy,
    now: datetime,
    source_key: str,
    started_at: datetime,
    batch: int,
) -> Iterator[_Batch]:
    retries: list[str] = []
    args = (policy, queue, now, source_key, started_at)
    with open_catalog(options, on_retry=retries.append) as (version, datasets):
        items: list[Any] = []
        begun = time.perf_counter()
        for item in datasets:
            items.append(item)
            if len(items) >= batch:
                yield _prepared(items, version, begun, retries, args)
                items, begun = [], time.perf_counter()
        if items:
            yield _prepared(items, version, begun, retries, args)


def _prepared(
    items: list[Any], version: str, begun: float, retries: list[str], args: tuple[Any, ...]
) -> _Batch:
    policy, queue, now, source_key, started_at = args
    mapped: DcatMapped = map_datasets(items, version=version, now=now)
    prepared = prepare(
        mapped.mapped,
        policy=policy,
        queue=queue,
        now=now,
        source=source_key,
        harvested_at=started_at,
    )
    count = len(retries)
    retries.clear()
    return _Batch(prepared, len(mapped.pages), count, time.perf_counter() - begun)


__all__ = ["BATCH", "DataJsonError", "DataJsonOptions", "harvest_datajson"]
