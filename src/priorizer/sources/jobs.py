"""The scheduled job that harvests the watched sources that are due (every
SOURCES_CHECK_SECONDS, in every server process: each due run is taken by one of them).

The job only looks: the harvests run in a thread of their own, one at a time per process, so
a long harvest neither holds the scheduler's thread nor makes it skip (and warn) every tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from priorizer.harvest.service import Context
from priorizer.sources import service

log = logging.getLogger(__name__)

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
            outcomes = service.harvest_due(self._context(), options=SCHEDULED_OPTIONS)
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
