"""Harvesting a DCAT-US `data.json` catalog into the catalog, as a stream.

A thread reads the catalog (`datajson`, ijson over the HTTP stream), maps each batch of datasets
(`dcat`) and scores it (`reader.prepare`), while this one writes the batch before, each in one
transaction with the run's counts (`service.store_page`). Every run lists the whole catalog, so
a run that read it to the end marks the source's datasets it did not meet as removed upstream,
as a full CKAN run does. A run stopped midway is continued by the next one, which reads the
catalog again from the start (a data.json cannot be asked for a part of itself).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from priorizer.errors import Conflict
from priorizer.harvest import service
from priorizer.harvest.datajson import DataJsonError, DataJsonOptions, open_catalog
from priorizer.harvest.dcat import DcatMapped, map_datasets
from priorizer.harvest.reader import Prepared, prepare

log = logging.getLogger(__name__)

BATCH = 500  # datasets per transaction
AHEAD = 2  # batches read ahead of the writer


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
        run_id, started_at = service.start_run(
            context, source=source, since=None, incremental=False
        )
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
            return service.finish_run(context, source=source, run_id=run_id, listing=True)
        except BaseException as error:
            service.stop_run(database, run_id, error, clock=context.clock)
            raise


def _read_ahead(
    context: service.Context,
    options: DataJsonOptions,
    source_key: str,
    started_at: Any,
    batch: int,
) -> Iterator[_Batch]:
    """The catalog's batches, read and prepared by a thread up to `AHEAD` batches ahead."""
    handoff: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=AHEAD)
    stop = threading.Event()

    def work() -> None:
        try:
            for read in _batches(context, options, source_key, started_at, batch):
                while not stop.is_set():
                    try:
                        handoff.put(read, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(None)
        except BaseException as error:
            handoff.put(error)

    reader = threading.Thread(target=work, name="priorizer-datajson-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)


def _batches(
    context: service.Context,
    options: DataJsonOptions,
    source_key: str,
    started_at: Any,
    batch: int,
) -> Iterator[_Batch]:
    retries: list[str] = []
    with open_catalog(options, on_retry=retries.append) as (version, datasets):
        items: list[Any] = []
        begun = time.perf_counter()
        for item in datasets:
            items.append(item)
            if len(items) >= batch:
                yield _prepared(context, items, version, source_key, started_at, begun, retries)
                items, begun = [], time.perf_counter()
        if items:
            yield _prepared(context, items, version, source_key, started_at, begun, retries)


def _prepared(
    context: service.Context,
    items: list[Any],
    version: str,
    source_key: str,
    started_at: Any,
    begun: float,
    retries: list[str],
) -> _Batch:
    now = context.clock()
    mapped: DcatMapped = map_datasets(items, version=version, now=now)
    prepared = prepare(
        mapped.mapped,
        policy=context.policy,
        queue=context.queue,
        now=now,
        source=source_key,
        harvested_at=started_at,
    )
    count = len(retries)
    retries.clear()
    return _Batch(prepared, len(mapped.pages), count, time.perf_counter() - begun)


__all__ = ["BATCH", "DataJsonError", "DataJsonOptions", "harvest_datajson"]
