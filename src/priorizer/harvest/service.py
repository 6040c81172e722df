"""A harvest's sources, its runs as they are shown, and the storing of one page (in the
transaction the harvest job, `harvest.jobs`, opens for it)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.catalog import service as catalog_service
from priorizer.db import Database
from priorizer.harvest import repo
from priorizer.harvest.ckan import action_url
from priorizer.harvest.models import HarvestRun
from priorizer.harvest.reader import (
    Prepared,
    to_millis,
)
from priorizer.queue.policy import QueuePolicy
from priorizer.scoring.policy import Policy, quick_result

SORT = "metadata_modified asc, id asc"
LOCK_NAME = "harvest"


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    organization: str | None = None
    query: str | None = None
    kind: str = "ckan"  # or "dcat": a data.json catalog (`dcat_run`)

    @property
    def key(self) -> str:
        """How datasets remember where they came from: the portal's API, and the scope (a
        data.json catalog: its URL)."""
        if self.kind == "dcat":
            return self.url.strip()
        parts = [self.url if self.url.startswith("file:") else action_url(self.url)]
        if self.organization:
            parts.append(f"organization={self.organization}")
        if self.query:
            parts.append(f"q={self.query}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Context:
    database: Database
    policy: Policy
    queue: QueuePolicy
    clock: Callable[[], datetime]
    # Hears of each run that found datasets removed upstream: (the run's record, their ids).
    on_removed: Callable[[dict[str, Any], list[str]], None] | None = None


def lock_key(source_key: str) -> int:
    return int.from_bytes(hashlib.sha256(source_key.encode()).digest()[:7], "big")


def filters(source: Source, *, cursor: str | None, since: datetime | None) -> list[str]:
    filters = []
    if source.organization:
        filters.append(f'organization:"{_solr_escape(source.organization)}"')
    start = cursor or (to_millis(since) if since is not None else None)
    if start is not None:
        filters.append(f"metadata_modified:[{start} TO *]")
    return filters


def _solr_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def store_page(
    context: Context,
    session: Session,
    *,
    run_id: int,
    page: Prepared,
    cursor: tuple[str | None, int],
    expected: int | None,
    retries: int,
    seconds: float,
    paging: tuple[str, str | None] | None = None,
    pages_to_discover: int | None = None,
) -> dict[str, Any]:
    run = repo.get(session, run_id=run_id, for_update=True)
    assert run is not None
    if paging is not None:
        run.paging, run.paging_note = paging
    if pages_to_discover is not None:
        run.pages_to_discover = (run.pages_to_discover or 0) + pages_to_discover
    returned = catalog_service.removed_dataset_ids(
        session, ids=[row["id"] for row in page.dataset_rows]
    )
    catalog_service.upsert_datasets(session, rows=page.dataset_rows)
    created, updated = _store_assets(context, session, page=page)
    run.cursor_modified, run.cursor_skip = cursor
    run.pages += 1
    if run.pages & (run.pages - 1) == 0:  # pages 1, 2, 4, 8…: the catalog doubled, or so
        catalog_service.refresh_statistics(session)
    run.datasets += len(page.dataset_rows)
    run.assets_created += created
    run.assets_updated += updated
    run.shared_urls += page.shared_urls
    run.skipped = dict(Counter(run.skipped or {}) + page.skipped)
    run.returned = (run.returned or 0) + len(returned)
    run.retries += retries
    run.seconds += seconds
    run.updated_at = context.clock()
    if expected is not None:
        run.expected = expected
    newest = page.newest_modified
    if newest is not None and (run.newest_modified is None or newest > run.newest_modified):
        run.newest_modified = newest
    return run_view(run)


def _store_assets(context: Context, session: Session, *, page: Prepared) -> tuple[int, int]:
    """Upsert the page's assets; (created, updated). A URL the catalog knows keeps its asset's
    id, and its size when the portal gives none (which may change the score)."""
    rows = page.asset_rows
    known = catalog_service.assets_by_url_keys(session, keys=[row["url_key"] for row in rows])
    for row in rows:
        found = known.get(row["url_key"])
        if found is None:
            continue
        row["id"], stored_size = found
        if row["size_mb"] is None and stored_size is not None:
            points = page.points[row["dataset_id"]]
            row["base_priority"] = row["priority"] = quick_result(
                context.policy, points, stored_size
            )
    rows.sort(key=lambda row: row["id"])  # every multi-row write in id order: no deadlocks
    catalog_service.upsert_harvested_assets(session, rows=rows, queue=context.queue)
    return len(rows) - len(known), len(known)


def run_view(run: HarvestRun) -> dict[str, Any]:
    """A run as /status, the CLI and the API show it."""
    return {
        "id": run.id,
        "source": run.source,
        "state": run.state,
        "since": run.since,
        "started_at": run.started_at,
        "updated_at": run.updated_at,
        "finished_at": run.finished_at,
        "expected": run.expected,
        "pages": run.pages,
        "datasets": run.datasets,
        "assets_created": run.assets_created,
        "assets_updated": run.assets_updated,
        "shared_urls": run.shared_urls,
        "skipped_resources": dict(run.skipped or {}),
        "removed_upstream": run.removed,
        "returned_upstream": run.returned,
        "retries": run.retries,
        "datasets_per_second": round(run.datasets / run.seconds, 1) if run.seconds else None,
        "pages_to_discover": run.pages_to_discover,
        "paging": run.paging,
        "paging_note": run.paging_note,
        "error": run.error,
    }


def latest_run(session: Session) -> dict[str, Any] | None:
    run = repo.latest(session)
    return run_view(run) if run is not None else None


def recent_runs(session: Session, *, limit: int) -> list[dict[str, Any]]:
    return [run_view(run) for run in repo.recent(session, limit=limit)]


def runs_of(session: Session, *, source: str, limit: int) -> list[dict[str, Any]]:
    return [run_view(run) for run in repo.recent(session, limit=limit, source=source)]
