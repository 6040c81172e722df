"""Watched sources: add, list, remove, and harvest each one when it is due.

Each source is harvested every `every_seconds`: incrementally where the source can say what
changed (a CKAN portal), with a full run (which notices datasets removed upstream) at least every
`full_every_seconds`; a data.json is always read whole. Of several server processes sharing the
database, one takes each due run (`repo.claim_due`), and a source is never harvested twice at
once (the harvest's own lock per source). A failed harvest waits twice as long before each new
try (up to a day), and shows its error until a harvest succeeds.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from priorizer.errors import Conflict, Invalid, NotFound
from priorizer.harvest import dispatch
from priorizer.harvest import service as harvest_service
from priorizer.sources import repo
from priorizer.sources.models import WatchedSource

log = logging.getLogger(__name__)

RUNNER = f"{socket.gethostname()}:{os.getpid()}"
DEFAULT_EVERY_SECONDS = 6 * 3600.0
DEFAULT_FULL_EVERY_SECONDS = 86_400.0
MIN_EVERY_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 86_400.0
LEASE_SECONDS = 600.0  # renewed by every page stored; a dead process's lease runs out
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_every(text: str | float) -> float:
    """A period: seconds as a number, or `90s`, `30m`, `6h`, `1d`, `1w`."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if match is None:
            raise Invalid(f"{text!r} is not a period: write it like 90s, 30m, 6h, 1d or 1w")
        seconds = float(match[1]) * _UNITS[(match[2] or "s").lower()]
    if not MIN_EVERY_SECONDS <= seconds <= 366 * 86_400:
        raise Invalid(f"a period must be between 1 second and a year (got {text!r})")
    return seconds


def add_source(
    session: Session,
    *,
    url: str,
    kind: str | None,
    organization: str | None,
    query: str | None,
    every_seconds: float,
    full_every_seconds: float | None,
    now: datetime,
) -> WatchedSource:
    """Watch a source, due at once; `Conflict` when it is watched already."""
    source = dispatch.source_for(url, kind=kind, organization=organization, query=query)
    full = max(full_every_seconds or DEFAULT_FULL_EVERY_SECONDS, every_seconds)
    if repo.by_key(session, key=source.key) is not None:
        raise Conflict(f"{source.key} is watched already")
    watched = WatchedSource(
        key=source.key,
        url=source.url,
        kind=source.kind,
        organization=organization,
        query=query,
        every_seconds=every_seconds,
        full_every_seconds=full,
        created_at=now,
        next_run_at=now,
        failures=0,
    )
    session.add(watched)
    try:
        session.flush()
    except IntegrityError as error:  # added by another request in the meantime
        raise Conflict(f"{source.key} is watched already") from error
    return watched


def list_sources(session: Session) -> list[dict[str, Any]]:
    """Every watched source; its datasets as counted after its last harvest."""
    return [view(s) for s in repo.list_all(session)]


def remove_source(session: Session, *, ref: str) -> WatchedSource:
    """Stop watching a source, named by its id or its URL (its datasets stay)."""
    found = (
        [s for s in [repo.get(session, source_id=int(ref))] if s is not None]
        if ref.isascii() and ref.isdigit() and len(ref) < 18
        else repo.by_url(session, url=ref.strip())
    )
    if not found:
        raise NotFound(f"no watched source {ref!r}")
    if len(found) > 1:
        ids = ", ".join(str(s.id) for s in found)
        raise Conflict(f"several sources watch {ref}: name one by its id ({ids})")
    session.delete(found[0])
    return found[0]


def view(source: WatchedSource) -> dict[str, Any]:
    return {
        "id": source.id,
        "key": source.key,
        "url": source.url,
        "kind": source.kind,
        "organization": source.organization,
        "query": source.query,
        "every_seconds": source.every_seconds,
        "full_every_seconds": source.full_every_seconds,
        "created_at": source.created_at,
        "next_run_at": source.next_run_at,
        "is_running": source.leased_by is not None,
        "last_run_id": source.last_run_id,
        "last_run_at": source.last_run_at,
        "last_full_at": source.last_full_at,
        "last_state": source.last_state,
        "last_error": source.last_error,
        "failures": source.failures,
        "datasets": source.datasets or 0,
        "removed_upstream": source.removed_upstream or 0,
    }


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
