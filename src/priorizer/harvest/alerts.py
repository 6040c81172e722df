"""Removal alerts: a JSON notice to REMOVAL_WEBHOOK_URL when a harvest finds datasets removed
upstream, naming them and their assets that no node holds yet (the rescue's emergency).

Sent by the harvest's own thread once its run is recorded, retried a few times; an alert that
cannot be delivered is logged, never a reason to fail the harvest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from priorizer.catalog import service as catalog_service
from priorizer.config import Settings
from priorizer.db import Database

log = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0
ASSETS_NAMED = 1000  # at most this many assets in one notice; `assets_without_copy` counts all


class _Undelivered(Exception):
    pass


def sender(
    settings: Settings, database: Database
) -> Callable[[dict[str, Any], list[str]], None] | None:
    """The harvest's `on_removed` callback, or None when no webhook is set."""
    url = settings.removal_webhook_url
    if url is None:
        return None

    def send(run: dict[str, Any], removed: list[str]) -> None:
        with database.read() as session:
            notice = build_notice(session, run=run, removed=removed)
        post(url, notice)

    return send


def build_notice(session: Any, *, run: dict[str, Any], removed: list[str]) -> dict[str, Any]:
    rows, total = catalog_service.removed_without_copy(
        session, dataset_ids=removed, limit=ASSETS_NAMED
    )
    return {
        "event": "removed_upstream",
        "source": run["source"],
        "run_id": run["id"],
        "finished_at": run["finished_at"].isoformat() if run["finished_at"] else None,
        "removed_datasets": sorted(removed),
        "assets_without_copy": total,
        "assets": [
            {
                "id": row.id,
                "name": row.name,
                "url": row.url,
                "priority": row.priority,
                "size_mb": row.size_mb,
                "dataset_id": row.dataset_id,
                "dataset_title": row.title,
            }
            for row in rows
        ],
    }


def post(url: str, notice: dict[str, Any]) -> None:
    """POST the notice, retrying timeouts, dropped connections and 5xx answers."""

    def once() -> None:
        try:
            response = httpx.post(url, json=notice, timeout=TIMEOUT_SECONDS)
        except httpx.TransportError as error:
            raise _Undelivered(f"{type(error).__name__}: {error}") from error
        if response.status_code >= 500 or response.status_code == 429:
            raise _Undelivered(f"HTTP {response.status_code}")
        if not response.is_success:
            log.error("removal alert refused by the webhook: HTTP %d", response.status_code)

    try:
        Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception_type(_Undelivered),
            reraise=True,
        )(once)
    except _Undelivered as error:
        log.error("removal alert of run %s not delivered: %s", notice.get("run_id"), error)
    else:
        log.info(
            "removal alert of run %s sent: %d datasets removed",
            notice.get("run_id"),
            len(notice["removed_datasets"]),
        )
