"""Benchmark: one maintenance cycle on a large catalog, and /allocate latency while it runs.

A real server (scheduler off) takes /allocate at a fixed rate; meanwhile `priorizer maintain`
runs one cycle in its own process, the way a second process would. Before that, some nodes
are given leases that are already due, so the cycle has leases to expire and nodes to charge.
Prints the cycle's duration and steps, and p50/p99 of the requests due during the cycle next to
those due outside it.

    python bench/maintenance.py --assets 1000000
    python bench/maintenance.py --assets 1000000 --database postgresql
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from allocate import (
    free_port,
    open_loop,
    open_loop_samples,
    postgresql_catalog,
    report,
    sqlite_catalog,
    start,
    stop,
    summarise,
)

from priorizer.allocation import service as allocation_service
from priorizer.app import queue_policy
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.service import cap_limits


def add_due_leases(url: str, nodes: int) -> int:
    """Leases for `nodes` nodes, handed out a day ago for an hour: all due now."""
    settings = Settings.of(database_url=url, run_scheduler=False)
    database = Database(url)
    then = datetime.now(UTC) - timedelta(days=1)
    count = 0
    try:
        for i in range(nodes):
            with database.write() as session:
                count += len(
                    allocation_service.allocate(
                        session,
                        node_id=f"due-{i}",
                        free_space_gb=50,
                        queue=queue_policy(settings),
                        max_assets=settings.max_assets_per_allocation,
                        limits=cap_limits(settings),
                        lease_seconds=3600,
                        now=then,
                    )
                )
    finally:
        database.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rate", type=float, default=100, help="offered /allocate per second")
    parser.add_argument("--due-nodes", type=int, default=400, help="nodes with due leases")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-"))
    if args.database == "sqlite":
        url, _ = sqlite_catalog(args.assets, workdir)
    else:
        url, _ = postgresql_catalog(args.assets)
    due = add_due_leases(url, args.due_nodes)
    settings = Settings.of(database_url=url, run_scheduler=False)
    print(
        f"catalog: {args.assets:,} assets on {args.database}; {due:,} due leases on "
        f"{args.due_nodes} nodes; priority refresh of {settings.priority_refresh_limit:,} "
        "assets per cycle"
    )

    port = free_port()
    env = {
        "DATABASE_URL": url,
        "PRIORIZER_PORT": str(port),
        "DATA_DIRECTORY": str(workdir),
        "LOG_LEVEL": "WARNING",
        "PRIORIZER_RUN_SCHEDULER": "false",
    }
    bin_dir = Path(sys.executable).parent
    server = start([str(bin_dir / "priorizer"), "serve"], env, port, workdir / "server.log")
    cycle: dict[str, object] = {}

    def maintain() -> None:
        time.sleep(3)  # let the load settle first
        done = subprocess.run(
            [str(bin_dir / "priorizer"), "maintain"],
            env={**env, "PATH": str(bin_dir)},
            capture_output=True,
            text=True,
            check=True,
        )
        cycle.update(json.loads(done.stdout))

    try:
        open_loop(port, args.rate, 3, args.connections)  # warm-up
        runner = threading.Thread(target=maintain)
        runner.start()
        started = time.perf_counter()
        samples = open_loop_samples(port, args.rate, 20, args.connections)
        elapsed = time.perf_counter() - started
        runner.join()
    finally:
        stop(server)

    finished = datetime.fromisoformat(str(cycle["finished_at"])).timestamp()
    duration = float(cycle["duration_seconds"])  # type: ignore[arg-type]
    during = [s for s in samples if finished - duration <= s[0] <= finished]
    outside = [s for s in samples if not finished - duration <= s[0] <= finished]
    print(f"maintenance cycle: {duration:.2f} s, outcome {cycle['outcome']}")
    print("steps: " + json.dumps(cycle["steps"]))
    if during:
        report(f"/allocate during the cycle ({len(during)})", summarise(during, duration))
    report(f"/allocate outside it ({len(outside)})", summarise(outside, elapsed - duration))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
