"""The scheduled probe: every PROBE_INTERVAL_MINUTES, up to PROBE_BATCH due assets, in one
process at a time (the others skip their turn)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from priorizer.allocation.policy import QueuePolicy
from priorizer.db import Database
from priorizer.discovery.service import ProbeConfig, ProbeReport, probe_catalog

log = logging.getLogger(__name__)

JOB_ID = "discovery"
PROBE_LOCK = 74_251_010  # PostgreSQL advisory lock key (maintenance uses ...002)


def scheduled_probe(
    *,
    database: Database,
    config: ProbeConfig,
    queue: QueuePolicy,
    limit: int,
    clock: Callable[[], datetime],
) -> ProbeReport | None:
    with database.exclusive("discovery", key=PROBE_LOCK) as mine:
        if not mine:
            log.info("probe skipped: another process is probing")
            return None
        try:
            report = probe_catalog(database, config=config, queue=queue, limit=limit, clock=clock)
        except Exception:
            log.exception("probe run failed")
            return None
    if report.probed:
        log.info("probe run: %s", report.as_dict())
    return report
