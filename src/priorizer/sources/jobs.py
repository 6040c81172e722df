"""The scheduled job that harvests the watched sources that are due (every
SOURCES_CHECK_SECONDS, in every server process: each due run is taken by one of them)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from priorizer.harvest.service import Context
from priorizer.sources import service

log = logging.getLogger(__name__)

JOB_ID = "sources"


def scheduled_check(*, context: Callable[[], Context]) -> None:
    started = time.perf_counter()
    try:
        outcomes = service.harvest_due(context())
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
