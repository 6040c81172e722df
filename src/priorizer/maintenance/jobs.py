"""The maintenance cycle (the seed's automated clean-up), from the scheduler or the CLI: a job,
which owns its transactions.

Each step works in short transactions of its own, so allocation requests go on between them
(on SQLite they would otherwise wait for the whole cycle). Of several processes sharing a
database, one runs a cycle at a time (`Database.exclusive`), and each scheduled slot runs once
(`repo.claim`). Documented in docs/maintenance.md.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from priorizer import metrics
from priorizer.allocation import fleet, lifecycle
from priorizer.allocation import repo as allocation_repo
from priorizer.catalog import repo as catalog_repo
from priorizer.db import Database
from priorizer.maintenance import repo
from priorizer.maintenance.models import FAILED, OK
from priorizer.maintenance.service import SLOT_ORIGIN, MaintenancePolicy, slot_of, statistics
from priorizer.system import repo as system_repo

log = logging.getLogger(__name__)

JOB_ID = "maintenance"  # the scheduler's job (`priorizer.scheduler`), which /status reads
RUNNER_LOCK = 74_251_002  # PostgreSQL advisory lock key (startup uses ...001)
# Rows per transaction: small enough that a waiting allocation request is not held long (500
# expiries hold the writers' turn about 15 ms on SQLite at a million assets).
LEASES_PER_BATCH = 500
PRIORITIES_PER_BATCH = 250
NODES_PER_BATCH = 50
REFRESH_CURSOR_KEY = "priority_refresh_cursor"
# Slots count intervals from this instant, so every process agrees on them.
RUNNER = f"{socket.gethostname()}:{os.getpid()}"


def run_cycle(
    *,
    database: Database,
    policy: MaintenancePolicy,
    clock: Callable[[], datetime],
    scheduled: bool = False,
) -> dict[str, Any] | None:
    """Run one cycle; its record, or None when it was not this process's to run (another
    process is running one, or already ran this slot). `scheduled` runs claim the current
    slot; a run asked for by hand always runs, once no other is in progress."""
    with database.exclusive("maintenance", key=RUNNER_LOCK) as mine:
        if not mine:
            log.info("maintenance cycle skipped: another process is running one")
            return None
        now = clock()
        slot = slot_of(now, policy.interval_seconds) if scheduled else None
        with database.write() as session:
            repo.close_abandoned(session, now=now)
            run_id = repo.claim(session, slot=slot, runner=RUNNER, now=now)
            previous = repo.latest_ok(session)
            since = (
                previous.started_at - timedelta(seconds=policy.interval_seconds)
                if previous
                else None
            )
            before = dict(previous.stats or {}) if previous else {}
        if run_id is None:
            log.info("maintenance slot %s already run by another process", slot)
            return None
        started = time.perf_counter()
        try:
            steps = _steps(database, policy, now=now, since=since)
            with database.read() as session:
                stats = statistics(session, policy=policy, now=now, before=before)
        except Exception as error:
            _finish(database, run_id, clock, started, outcome=FAILED, error=_describe(error))
            raise
        return _finish(database, run_id, clock, started, outcome=OK, steps=steps, stats=stats)


def _steps(
    database: Database, policy: MaintenancePolicy, *, now: datetime, since: datetime | None
) -> dict[str, Any]:
    queue = policy.queue
    expired = _repeat(
        database,
        lambda s: lifecycle.expire_due(s, queue=queue, now=now, limit=LEASES_PER_BATCH),
    )
    orphans = _repeat(
        database,
        lambda s: lifecycle.close_orphans(s, queue=queue, now=now, limit=LEASES_PER_BATCH),
    )
    with database.background_write() as session:
        seen_before = now - timedelta(seconds=policy.node_lost_seconds)
        lost_nodes, copies_freed = fleet.mark_lost_nodes(
            session, queue=queue, seen_before=seen_before, now=now
        )
        returned_nodes, copies_restored = fleet.restore_returned_nodes(session, queue=queue)
    with database.read() as session:
        expiring = allocation_repo.nodes_with_expiries(session, since=since or SLOT_ORIGIN)
    charged: dict[str, int] = {}
    for start in range(0, len(expiring), NODES_PER_BATCH):
        with database.background_write() as session:
            charged |= fleet.account_expirations(
                session, node_ids=expiring[start : start + NODES_PER_BATCH], limits=policy.caps
            )
    redrawn = refresh_priorities(database, policy=policy, now=now)
    with database.background_write() as session:
        pruned = repo.prune(session, before=now - timedelta(seconds=policy.retention_seconds))
    return {
        "expired_leases": expired,
        "orphaned_leases_closed": orphans,
        "lost_nodes": lost_nodes,
        "copies_freed": copies_freed,
        "returned_nodes": returned_nodes,
        "copies_restored": copies_restored,
        "nodes_charged_for_expirations": len(charged),
        "priorities_redrawn": redrawn,
        "runs_pruned": pruned,
    }


def _repeat(database: Database, step: Callable[[Any], int]) -> int:
    """Run a batched step in transactions of its own until a batch comes back short."""
    total = 0
    while True:
        with database.background_write() as session:
            done = step(session)
        total += done
        if done < LEASES_PER_BATCH:
            return total


def refresh_priorities(database: Database, *, policy: MaintenancePolicy, now: datetime) -> int:
    """Redraw effective priorities around the base ones, for up to `refresh_limit` assets per
    cycle, going round the catalog in id order from where the last cycle stopped (a catalog
    smaller than the limit is redrawn whole every cycle). Returns the assets redrawn."""
    with database.read() as session:
        start = system_repo.get(session, key=REFRESH_CURSOR_KEY) or ""
    cursor, done, past_end = start, 0, False
    while done < policy.refresh_limit:
        size = min(PRIORITIES_PER_BATCH, policy.refresh_limit - done)
        with database.background_write() as session:
            upto = catalog_repo.id_after(session, after=cursor, offset=size - 1)
            if past_end and (upto is None or upto >= start):
                upto = start  # round the catalog once: stop where this cycle began
            done += catalog_repo.redraw_priorities(
                session, after=cursor, upto=upto, jitter=policy.priority_jitter, queue=policy.queue
            )
        if upto is None:  # the end of the catalog: go on from its start
            cursor = ""
            if not start:
                break
            past_end = True
            continue
        cursor = upto
        if past_end and upto == start:
            break
    with database.write() as session:
        system_repo.put(session, key=REFRESH_CURSOR_KEY, value=cursor, now=now)
    return done


def _finish(
    database: Database,
    run_id: int,
    clock: Callable[[], datetime],
    started: float,
    **values: Any,
) -> dict[str, Any]:
    duration = round(time.perf_counter() - started, 6)
    record = {"finished_at": clock(), "duration_seconds": duration, **values}
    metrics.observe_cycle(values["outcome"], duration)
    try:
        with database.write() as session:
            repo.finish(session, run_id=run_id, **record)
    except Exception:
        log.exception("could not record the outcome of maintenance run %s", run_id)
    return {"id": run_id, **record}


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
