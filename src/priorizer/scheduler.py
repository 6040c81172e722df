"""The server's background jobs, on APScheduler: the maintenance cycle at every slot (timed and
logged), the watched sources' check, and discovery's probe.

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

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.discovery.jobs import JOB_ID as PROBE_JOB_ID
from priorizer.discovery.jobs import scheduled_probe
from priorizer.discovery.service import ProbeConfig
from priorizer.maintenance.jobs import JOB_ID, run_cycle
from priorizer.maintenance.service import SLOT_ORIGIN, MaintenancePolicy
from priorizer.queue.policy import QueuePolicy

log = logging.getLogger(__name__)


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


def add_probe_job(
    scheduler: BackgroundScheduler,
    settings: Settings,
    database: Database,
    queue: QueuePolicy,
    clock: Callable[[], datetime],
) -> None:
    """Discovery's background probe (docs/discovery.md), beside the maintenance cycle."""
    scheduler.add_job(
        scheduled_probe,
        IntervalTrigger(minutes=settings.probe_interval_minutes, timezone="UTC"),
        id=PROBE_JOB_ID,
        name=PROBE_JOB_ID,
        kwargs={
            "database": database,
            "config": ProbeConfig.from_settings(settings),
            "queue": queue,
            "limit": settings.probe_batch,
            "clock": clock,
        },
        max_instances=1,
        coalesce=True,
    )
