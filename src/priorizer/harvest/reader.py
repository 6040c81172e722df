"""The reading half of a harvest, run in a worker process: fetch a page, parse it, map it, and
score what depends on the dataset alone. The harvest's own process only writes, so the two
halves use both cores (Python threads would take turns).

Everything here is pure but for the request; what crosses the process boundary is small:
the request going, the mapped page coming back.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from priorizer.catalog.models import ASSET_ACTIVE
from priorizer.harvest.ckan import CkanClient, ClientOptions
from priorizer.harvest.mapping import AssetRecord, Mapped, map_packages, parse_time
from priorizer.queue.policy import QueuePolicy, effective_size_mb, rank
from priorizer.scoring.policy import Facts, Policy, dataset_factors, quick_result

_clients: dict[ClientOptions, CkanClient] = {}  # one per portal in each worker, kept alive


@dataclass(frozen=True, slots=True)
class PageRequest:
    fq: list[str]
    q: str | None
    sort: str
    rows: int
    cursor: str | None  # where the listing is: see `next_cursor`
    skip: int
    now: datetime  # for the age factor, and the rows' times
    queue: QueuePolicy
    source: str
    harvested_at: datetime  # the run's start: how a full run tells what it listed


@dataclass(slots=True)
class Prepared:
    """A page ready to write: the rows, and what the run counts."""

    dataset_rows: list[dict[str, Any]] = field(default_factory=list)
    # Ids are the URL keys, and priorities from the portal's sizes: the writer replaces the id
    # of a URL the catalog knows, and the priority when only the catalog knows the size.
    asset_rows: list[dict[str, Any]] = field(default_factory=list)
    points: dict[str, float] = field(default_factory=dict)  # each dataset's, size aside
    shared_urls: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    newest_modified: datetime | None = None

    def keeping(self, ids: frozenset[str]) -> Prepared:
        """Only the datasets `ids` (each once) and their assets: what a page adds when the
        portal sends datasets already stored (`paging`)."""
        rows: dict[str, dict[str, Any]] = {}
        for row in self.dataset_rows:
            if row["id"] in ids:
                rows.setdefault(row["id"], row)
        if len(rows) == len(self.dataset_rows):
            return self
        return Prepared(
            dataset_rows=list(rows.values()),
            asset_rows=[a for a in self.asset_rows if a["dataset_id"] in rows],
            points=self.points,
            shared_urls=self.shared_urls,
            skipped=self.skipped,
            newest_modified=self.newest_modified,
        )


@dataclass(slots=True)
class ReadPage:
    count: int | None
    prepared: Prepared | None = None  # None: the listing is over
    cursor: str | None = None
    skip: int = 0
    retries: int = 0
    # Each package's id and modification instant, in the portal's order (`paging` checks them).
    entries: tuple[tuple[str, str | None], ...] = ()
    results: int = 0


def read_page(options: ClientOptions, policy: Policy, request: PageRequest) -> ReadPage:
    client = _clients.get(options)
    if client is None:
        client = _clients[options] = CkanClient(
            options.portal,
            timeout_seconds=options.timeout_seconds,
            attempts=options.attempts,
            backoff_seconds=options.backoff_seconds,
            max_backoff_seconds=options.max_backoff_seconds,
        )
    retries: list[str] = []
    client.on_retry = retries.append
    page = client.search(
        fq=request.fq, q=request.q, sort=request.sort, rows=request.rows, start=request.skip
    )
    if not page.results:
        return ReadPage(page.count, retries=len(retries))
    cursor, skip = next_cursor(request.cursor, request.skip, page.results)
    prepared = prepare(
        map_packages(page.results),
        policy=policy,
        queue=request.queue,
        now=request.now,
        source=request.source,
        harvested_at=request.harvested_at,
    )
    entries = tuple(
        (package["id"].strip(), _millis_of(package))
        for package in page.results
        if isinstance(package, dict)
        and isinstance(package.get("id"), str)
        and package["id"].strip()
    )
    return ReadPage(page.count, prepared, cursor, skip, len(retries), entries, len(page.results))


def prepare(
    mapped: Mapped,
    *,
    policy: Policy,
    queue: QueuePolicy,
    now: datetime,
    source: str,
    harvested_at: datetime,
) -> Prepared:
    """The rows a mapped page writes, scored."""
    points = dataset_points(policy, mapped, now=now)
    return Prepared(
        dataset_rows=[
            {
                "id": d.id,
                "name": d.name,
                "title": d.title,
                "organization": d.organization,
                "tags": list(d.tags),
                "modified_at": d.modified_at,
                "source": source,
                "views": d.views,
                "harvested_at": harvested_at,
            }
            for d in mapped.datasets
        ],
        asset_rows=[
            _asset_row(a, quick_result(policy, points[a.dataset_id], a.size_mb), queue, now)
            for a in mapped.assets
        ],
        points=points,
        shared_urls=mapped.shared_urls,
        skipped=mapped.skipped,
        newest_modified=max(
            (d.modified_at for d in mapped.datasets if d.modified_at), default=None
        ),
    )


def _asset_row(
    asset: AssetRecord, priority: int, queue: QueuePolicy, now: datetime
) -> dict[str, Any]:
    budget = effective_size_mb(asset.size_mb, queue.unknown_size_mb)
    return {
        "id": asset.id,
        "url": asset.url,
        "url_key": asset.id,
        "name": asset.name,
        "format": asset.format,
        "size_mb": asset.size_mb,
        "dataset_id": asset.dataset_id,
        "base_priority": priority,
        "priority": priority,
        "manual_priority": None,
        "state": ASSET_ACTIVE,
        "created_at": now,
        "updated_at": now,
        "copies": 0,
        "leases": 0,
        "budget_mb": budget,
        "rank": rank(priority, 0, True, queue, budget_mb=budget),
    }


def dataset_points(policy: Policy, mapped: Mapped, *, now: datetime) -> dict[str, float]:
    """Each dataset's points under the policy, size aside (the same for each of its files)."""
    return {
        d.id: sum(
            f.points
            for f in dataset_factors(
                policy,
                Facts(
                    organization=d.organization,
                    title=d.title,
                    name=d.name,
                    tags=d.tags,
                    views=d.views,
                    modified_at=d.modified_at,
                ),
                now=now,
            )
        )
        for d in mapped.datasets
    }


def to_millis(moment: datetime) -> str:
    """An instant as the search index compares `metadata_modified`: UTC, to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _millis_of(package: Any) -> str | None:
    moment = parse_time(package.get("metadata_modified")) if isinstance(package, dict) else None
    return to_millis(moment) if moment is not None else None


def next_cursor(cursor: str | None, skip: int, results: list[Any]) -> tuple[str | None, int]:
    """Where the listing continues after `results`: the last instant met, and how many datasets
    at that instant were taken (those of earlier pages too, when the instant is the same)."""
    last = _millis_of(results[-1])
    if last is None:  # no usable timestamp: go on by position
        return cursor, skip + len(results)
    same = sum(1 for package in results if _millis_of(package) == last)
    return last, same + (skip if last == cursor else 0)


def serve_reads(connection: Any, options: ClientOptions, policy: Policy, parent: int) -> None:
    """The worker's loop: read each page asked for on `connection` and send it back (or the
    error that stopped it). Ends when the harvest closes the connection, or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harvest decides, and stops this worker
    threading.Thread(target=_exit_without, args=(parent,), daemon=True).start()
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer: Any = read_page(options, policy, request)
        except Exception as error:
            answer = error
        try:
            connection.send(answer)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            if isinstance(answer, Exception):  # an error that does not pickle: its words do
                connection.send(RuntimeError(f"{type(answer).__name__}: {answer}"))
            else:
                return


def _exit_without(parent: int) -> None:
    """Ends this worker as soon as the harvest's process is gone (killed, even by SIGKILL):
    an orphan would hold the command's output open."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # alive, someone else's: cannot be ours
            os._exit(0)


class Reader:
    """The worker process that reads pages (`serve_reads`), and the pipe to it. It is
    stopped, never waited for, when the harvest ends for any reason."""

    def __init__(self, client: CkanClient, policy: Policy) -> None:
        context = worker_context()
        self._connection, theirs = context.Pipe()
        self._process = context.Process(  # type: ignore[attr-defined]
            target=serve_reads,
            args=(theirs, client.options, policy, os.getpid()),
            name="priorizer-harvest-reader",
            daemon=True,
        )
        self._process.start()
        theirs.close()

    def ask(self, request: PageRequest) -> None:
        self._connection.send(request)

    def answer(self) -> ReadPage:
        try:
            answer = self._connection.recv()
        except EOFError as error:
            raise RuntimeError("the harvest's reader process stopped") from error
        if isinstance(answer, BaseException):
            raise answer
        return cast(ReadPage, answer)

    def close(self) -> None:
        self._process.terminate()
        self._process.join(timeout=5)
        self._connection.close()


def worker_context() -> multiprocessing.context.BaseContext:
    """Fork from a clean server process, never from this one (it may hold threads and
    connections); the server has the reader imported already, so a worker starts at once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["priorizer.harvest.reader"])
    return context
