"""The maintenance scheduler: each job runs in its own transaction, timed and logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from priorizer.allocation.policy import QueuePolicy
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance import run_cycle

log = logging.getLogger(__name__)


def build_scheduler(
    *, database: Database, settings: Settings, queue: QueuePolicy, clock: Callable[[], datetime]
) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    interval = settings.auto_update_interval_seconds
    scheduler.add_job(
        _guarded(run_cycle),
        "interval",
        seconds=interval,
        id="maintenance",
        name="maintenance",
        kwargs={"database": database, "queue": queue, "clock": clock},
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    return scheduler


def _guarded(job: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    def run(**kwargs: Any) -> None:
        started = time.perf_counter()
        try:
            outcome = job(**kwargs)
        except Exception:
            log.exception("%s failed after %.3fs", job.__name__, time.perf_counter() - started)
            return
        log.info("%s done in %.3fs: %s", job.__name__, time.perf_counter() - started, outcome)

    run.__name__ = job.__name__
    return run
