"""One maintenance cycle (the seed's automated clean-up), runnable from the scheduler or CLI."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from priorizer.allocation import service as allocation_service
from priorizer.allocation.policy import QueuePolicy
from priorizer.db import Database
from priorizer.system import service as system_service


def run_cycle(
    *, database: Database, queue: QueuePolicy, clock: Callable[[], datetime]
) -> dict[str, Any]:
    started = time.perf_counter()
    now = clock()
    with database.write() as session:
        expired = allocation_service.expire_leases(session, queue=queue, now=now)
        outcome = {
            "at": now.isoformat(),
            "outcome": "ok",
            "expired_leases": expired,
            "duration_seconds": round(time.perf_counter() - started, 6),
        }
        system_service.record_maintenance(session, outcome=outcome, now=now)
    return outcome
