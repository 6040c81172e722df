"""Watched sources: add, list, remove (harvesting each when it is due is `sources.jobs`).

Each source is harvested every `every_seconds`: incrementally where the source can say what
changed (a CKAN portal), with a full run (which notices datasets removed upstream) at least every
`full_every_seconds`; a data.json is always read whole. Of several server processes sharing the
database, one takes each due run (`repo.claim_due`), and a source is never harvested twice at
once (the harvest's own lock per source). A failed harvest waits twice as long before each new
try (up to a day), and shows its error until a harvest succeeds.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from priorizer.errors import Conflict, Invalid, NotFound
from priorizer.harvest import dispatch
from priorizer.sources import repo
from priorizer.sources.models import WatchedSource

DEFAULT_EVERY_SECONDS = 6 * 3600.0
DEFAULT_FULL_EVERY_SECONDS = 86_400.0
MIN_EVERY_SECONDS = 1.0
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
