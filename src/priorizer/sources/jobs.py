"""The scheduled job that harvests the watched sources that are due (every
SOURCES_CHECK_SECONDS, in every server process: each due run is taken by one of them).

The job only looks: the harvests run in a thread of their own, one at a time per process, so
a long harvest neither holds the scheduler's thread nor makes it skip (and warn) every tick.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from priorizer.errors import Conflict
from priorizer.harvest import dispatch
from priorizer.harvest import service as harvest_service
from priorizer.harvest.service import Context
from priorizer.sources import repo
from priorizer.sources.service import view

log = logging.getLogger(__name__)

RUNNER = f"{socket.gethostname()}:{os.getpid()}"
MAX_BACKOFF_SECONDS = 86_400.0
LEASE_SECONDS = 600.0  # renewed by every page stored; a dead process's lease runs out
# A run tries each request this many times; the schedule's back-off does the rest.
SCHEDULED_OPTIONS = {"attempts": 3, "backoff_seconds": 1.0}


class SourcesJob:
    def __init__(self, context: Callable[[], Context]) -> None:
        self._context = context
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return  # still harvesting: it takes the next due source itself
            self._worker = threading.Thread(
                target=self._harvest_due, name="priorizer-sources", daemon=True
            )
            self._worker.start()

    def _harvest_due(self) -> None:
        started = time.perf_counter()
        try:
            outcomes = harvest_due(self._context(), options=SCHEDULED_OPTIONS)
        except Exception:
            log.exception("watched sources check failed after %.3fs", time.perf_counter() - started)
            return
        for outcome in outcomes:
            log.info(
                "watched source %s: %s%s",
                outcome["source"],
                outcome.get("state"),
                f" ({outcome['error']})" if outcome.get("error") else "",
            )

    def join(self, timeout: float) -> None:
        worker = self._worker
        if worker is not None:
            worker.join(timeout)


def harvest_due(
    context: harvest_service.Context,
    *,
    runner: str = RUNNER,
    limit: int = 100,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Harvest the sources due, one after another (up to `limit`); what each run gave."""
    outcomes = []
    for _ in range(limit):
        now = context.clock()
        with context.database.write() as session:
            source = repo.claim_due(session, now=now, runner=runner, lease_seconds=LEASE_SECONDS)
            taken = None if source is None else view(source)
        if taken is None:
            break
        outcomes.append(_harvest_one(context, taken, runner=runner, options=options or {}))
    return outcomes


def _harvest_one(
    context: harvest_service.Context,
    source: dict[str, Any],
    *,
    runner: str,
    options: dict[str, Any],
) -> dict[str, Any]:
    now = context.clock()
    last_full = source["last_full_at"]
    full = (
        source["kind"] == dispatch.DCAT
        or last_full is None
        or (now - last_full).total_seconds() >= source["full_every_seconds"]
    )
    target = dispatch.source_for(
        source["url"],
        kind=source["kind"],
        organization=source["organization"],
        query=source["query"],
    )
    log.info("harvesting watched source %s (%s)", source["key"], "full" if full else "incremental")
    try:
        run = dispatch.harvest(
            context,
            target,
            incremental=not full,
            on_page=_renewer(context, source["id"], runner),
            **options,
        )
    except Conflict as error:  # another process is harvesting it (by hand, say): not a failure
        _release(context, source["id"], runner, {"last_error": str(error)})
        return {"source": source["key"], "state": "skipped", "error": str(error)}
    except Exception as error:
        failures = source["failures"] + 1
        wait = min(
            source["every_seconds"] * 2**failures, max(MAX_BACKOFF_SECONDS, source["every_seconds"])
        )
        message = f"{type(error).__name__}: {error}"[:1000]
        log.warning("watched source %s failed (%d in a row): %s", source["key"], failures, message)
        _release(
            context,
            source["id"],
            runner,
            {
                "failures": failures,
                "last_state": "failed",
                "last_error": message,
                "last_run_at": now,
                "last_run_id": _latest_run_id(context, target.key),
                "next_run_at": now + timedelta(seconds=wait),
            },
        )
        return {"source": source["key"], "state": "failed", "error": message}
    values: dict[str, Any] = {
        "failures": 0,
        "last_state": run["state"],
        "last_error": None,
        "last_run_at": now,
        "last_run_id": run["id"],
    }
    if full:
        values["last_full_at"] = now
    _release(context, source["id"], runner, values)
    return {"source": source["key"], **run}


def _renewer(
    context: harvest_service.Context, source_id: int, runner: str
) -> Callable[[dict[str, Any]], None]:
    def renew(_view: dict[str, Any]) -> None:
        until = context.clock() + timedelta(seconds=LEASE_SECONDS)
        with context.database.write() as session:
            repo.renew(session, source_id=source_id, runner=runner, until=until)

    return renew


def _release(
    context: harvest_service.Context, source_id: int, runner: str, values: dict[str, Any]
) -> None:
    """Let the source go with how its run went, and its datasets counted anew."""
    with context.database.write() as session:
        source = repo.get(session, source_id=source_id)
        if source is not None:
            total, removed = repo.dataset_counts(session, keys=[source.key]).get(source.key, (0, 0))
            values = {**values, "datasets": total, "removed_upstream": removed}
        if not repo.release(session, source_id=source_id, runner=runner, values=values):
            log.warning("watched source %d was no longer held by %s", source_id, runner)


def _latest_run_id(context: harvest_service.Context, key: str) -> int | None:
    with context.database.read() as session:
        runs = harvest_service.runs_of(session, source=key, limit=1)
    return runs[0]["id"] if runs else None
