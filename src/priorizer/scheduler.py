"""The maintenance scheduler: APScheduler fires a cycle at every slot, timed and logged.

Slots are aligned on one origin (`maintenance.service.SLOT_ORIGIN`), so every process sharing
a database fires at the same moments and the first to claim the slot runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from priorizer.db import Database
from priorizer.maintenance.service import SLOT_ORIGIN, MaintenancePolicy, run_cycle

log = logging.getLogger(__name__)

JOB_ID = "maintenance"


def build_scheduler(
    *,
    database: Database,
    policy: MaintenancePolicy,
    clock: Callable[[], datetime],
    sources: tuple[Callable[[], Any], float] | None = None,
) -> BackgroundScheduler:
    """The maintenance cycle, and (`sources`: the job and its period) the watched sources'
    check, each in a thread of its own, one run at a time."""
    scheduler = BackgroundScheduler(timezone="UTC")
    if sources is not None:
        job, seconds = sources
        scheduler.add_job(
            job,
            IntervalTrigger(seconds=seconds, timezone="UTC"),
            id="sources",
            name="sources",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # a first look at start-up
        )
    scheduler.add_job(
        _scheduled_cycle,
        IntervalTrigger(seconds=policy.interval_seconds, start_date=SLOT_ORIGIN, timezone="UTC"),
        id=JOB_ID,
        name=JOB_ID,
        kwargs={"database": database, "policy": policy, "clock": clock},
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
    )
    return scheduler


def _scheduled_cycle(
    *, database: Database, policy: MaintenancePolicy, clock: Callable[[], datetime]
) -> None:
    started = time.perf_counter()
    try:
        outcome = run_cycle(database=database, policy=policy, clock=clock, scheduled=True)
    except Exception:
        log.exception("maintenance cycle failed after %.3fs", time.perf_counter() - started)
        return
    if outcome is not None:
        seconds = time.perf_counter() - started
        log.info("maintenance cycle %s done in %.3fs: %s", outcome["id"], seconds, summary(outcome))
        log.debug("maintenance cycle %s: %s", outcome["id"], outcome)


def summary(outcome: dict[str, Any]) -> str:
    """A cycle in a short line: the steps that did something (the whole record, with its
    statistics snapshot, is kilobytes: it goes to DEBUG, /status and /maintenance/runs)."""
    done = [f"{step} {count}" for step, count in (outcome.get("steps") or {}).items() if count]
    return ", ".join(done) or "nothing to do"
