"""Probe: what one allocation costs, in-process, without HTTP.

Runs `allocation.service.allocate` for new nodes on a fresh copy of a catalog (see
bench/allocate.py), first one at a time, then from `--threads` threads at once, and prints per
allocation: statements sent to PostgreSQL (round trips; BEGIN and COMMIT counted apart), the
wall time, and on PostgreSQL what the backends waited on while the threads ran (sampled from
pg_stat_activity), and how often a claim lost rows to another transaction.

    python bench/allocate_probe.py --assets 100000 --database postgresql --threads 8
"""

from __future__ import annotations

import argparse
import collections
import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from allocate import postgresql_catalog, sqlite_catalog
from sqlalchemy import create_engine, event, text

from priorizer.allocation import claims as allocation_claims
from priorizer.allocation import service as allocation_service
from priorizer.config import Settings
from priorizer.db import Database, migrate
from priorizer.maintenance.service import cap_limits
from priorizer.queue.policy import queue_policy

STATEMENTS = collections.Counter[str]()
CLAIMS = collections.Counter[str]()
SECONDS = collections.Counter[str]()
CALLS = collections.Counter[str]()


def count_driver_calls() -> None:
    """Count every statement a driver cursor runs (the hot path bypasses SQLAlchemy's events)
    and every transaction's BEGIN/COMMIT."""
    import psycopg

    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        STATEMENTS["statements"] += 1
        started = time.perf_counter()
        try:
            return original(self, query, *args, **kwargs)
        finally:
            key = " ".join(str(query).split())[:60]
            SECONDS[key] += time.perf_counter() - started
            CALLS[key] += 1

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    original_claim = allocation_claims.claim_leases

    def claim(session: Any, *, asset_ids: Any, **kwargs: Any) -> Any:
        won = original_claim(session, asset_ids=asset_ids, **kwargs)
        CLAIMS["claims"] += 1
        CLAIMS["asked"] += len(asset_ids)
        CLAIMS["won"] += len(won)
        return won

    allocation_claims.claim_leases = claim  # type: ignore[assignment]


def allocate_one(database: Database, settings: Settings, node_id: str) -> int:
    with database.write() as session:
        return len(
            allocation_service.allocate(
                session,
                node_id=node_id,
                free_space_gb=random.randint(1, 20),
                queue=queue_policy(settings),
                max_assets=settings.max_assets_per_allocation,
                limits=cap_limits(settings),
                lease_seconds=settings.allocation_expiry_seconds,
                failed_retry_seconds=settings.failed_retry_seconds,
                now=datetime.now(UTC),
            )
        )


def sample_waits(url: str, stop: threading.Event, waits: collections.Counter[str]) -> None:
    engine = create_engine(url)
    with engine.connect() as conn:
        while not stop.wait(0.01):
            rows = conn.execute(
                text(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu') , state "
                    "FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                )
            ).all()
            for wait, state in rows:
                waits[f"{state} / {wait}"] += 1
            conn.rollback()
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="priorizer-probe-"))
    if args.database == "sqlite":
        url, _ = sqlite_catalog(args.assets, workdir)
    else:
        url, _ = postgresql_catalog(args.assets, name=f"priorizer_probe_{args.assets}")
    settings = Settings.of(database_url=url, run_scheduler=False)
    migrate(url)  # the server-side functions of this code
    database = Database(url)
    count_driver_calls()
    begins = collections.Counter[str]()
    event.listen(database.write_engine, "begin", lambda _conn: begins.update(["begin"]))
    event.listen(database.write_engine, "commit", lambda _conn: begins.update(["commit"]))

    for i in range(20):  # warm-up
        allocate_one(database, settings, f"warm-{i}")
    STATEMENTS.clear(), CLAIMS.clear(), begins.clear(), SECONDS.clear(), CALLS.clear()
    started = time.perf_counter()
    items = sum(allocate_one(database, settings, f"solo-{i}") for i in range(args.requests))
    elapsed = time.perf_counter() - started
    per = lambda n: n / args.requests  # noqa: E731
    print(
        f"one at a time: {elapsed / args.requests * 1000:.2f} ms an allocation, "
        f"{per(STATEMENTS['statements']):.1f} statements + BEGIN/COMMIT "
        f"({per(begins['begin']):.0f}/{per(begins['commit']):.0f}), "
        f"{per(items):.1f} leases, {per(CLAIMS['claims']):.2f} claims"
    )

    for key, seconds in SECONDS.most_common(12):
        print(f"  {seconds / CALLS[key] * 1000:7.3f} ms x {CALLS[key] / args.requests:4.2f}  {key}")
    STATEMENTS.clear(), CLAIMS.clear()
    waits: collections.Counter[str] = collections.Counter()
    stop = threading.Event()
    sampler = threading.Thread(target=sample_waits, args=(url, stop, waits))
    if args.database == "postgresql":
        sampler.start()
    counter = iter(range(args.requests * args.threads))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            allocate_one(database, settings, f"many-{i}")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    stop.set()
    total = args.requests * args.threads
    print(
        f"{args.threads} threads: {total / elapsed:.0f} allocations/s, "
        f"{STATEMENTS['statements'] / total:.1f} statements each, "
        f"{CLAIMS['claims'] / total:.2f} claims each, rows lost to others "
        f"{CLAIMS['asked'] - CLAIMS['won']} of {CLAIMS['asked']}"
    )
    if waits:
        sampler.join()
        seen = sum(waits.values())
        for wait, n in waits.most_common(8):
            print(f"  backends {wait}: {n / seen:.0%}")
    database.dispose()


if __name__ == "__main__":
    main()
