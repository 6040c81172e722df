"""Benchmark: URLs probed per second, against a local origin answering for 1,000 hosts.

A separate process (asyncio, uvloop) listens on 0.0.0.0, so every loopback address from
127.0.0.2 up reaches it as a host of its own; it answers `HEAD` (and ranged `GET`) for any path
after `--latency-ms` (a remote origin's delay), and counts the requests it holds at once per
`Host`. Measured, at the default politeness (PROBE_CONCURRENCY 64, PROBE_HOST_CONCURRENCY 2):

- the prober alone (`discovery.prober.Prober`), in this process, over N URLs grouped by host
  and a batch of 256 at a time, on the event loop the command uses (`prober.run`: uvloop);
- `priorizer probe --limit N` end to end (the real command: read due assets, probe, write),
  after `priorizer import-urls` of the same N URLs, on SQLite and, with `--database
  postgresql`, PostgreSQL; from the command's start to its exit and as it reports itself.

It prints URLs/s and URLs per CPU second (which hold on a machine busy with other work), and the
most requests any one host saw at once (never above the limit). 2026-12-04, 2 cores nearly
idle: about 2,800 URLs/s alone and 2,150 for the command on SQLite (README, Benchmarks).

    python bench/probe.py --urls 20000 --hosts 1000
    python bench/probe.py --urls 20000 --hosts 1000 --database postgresql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

from allocate import PG_ADMIN, free_port
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from priorizer.discovery.prober import Prober, by_host, run  # noqa: E402

PRIORIZER = Path(sys.executable).parent / "priorizer"
SIZE = 123_456_789
BATCH = 256


class _Origin(asyncio.Protocol):
    active: ClassVar[dict[bytes, int]] = defaultdict(int)
    most: ClassVar[dict[bytes, int]] = defaultdict(int)
    served = 0
    latency = 0.0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            host = b""
            for line in head.split(b"\r\n")[1:]:
                if line[:5].lower() == b"host:":
                    host = line[5:].strip()
            ranged = b"\r\nrange:" in head.lower()
            _Origin.active[host] += 1
            _Origin.most[host] = max(_Origin.most[host], _Origin.active[host])
            loop = asyncio.get_running_loop()
            loop.call_later(_Origin.latency, self._answer, host, ranged)

    def _answer(self, host: bytes, ranged: bool) -> None:
        _Origin.active[host] -= 1
        _Origin.served += 1
        if self.transport.is_closing():
            return
        if ranged:
            head = "HTTP/1.1 206 Partial Content\r\n"
            head += f"Content-Range: bytes 0-0/{SIZE}\r\nContent-Length: 1\r\n"
            body = b"x"
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n"
            body = b""
        head += 'Content-Type: application/octet-stream\r\nETag: "e"\r\n\r\n'
        self.transport.write(head.encode() + body)


def serve(port: int, latency: float, ready: Any, stats: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        _Origin.latency = latency
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Origin, "0.0.0.0", port, backlog=4096)
        ready.put(True)
        while True:
            await asyncio.sleep(0.2)
            stats.put((_Origin.served, max(_Origin.most.values(), default=0)))
            _Origin.most.clear()
        server.close()

    asyncio.run(main())


def urls(count: int, hosts: int, port: int) -> list[str]:
    def host(i: int) -> str:
        n = 2 + i % hosts  # 127.0.0.2 and up, over the last two bytes
        return f"127.0.{n // 250}.{n % 250 + 2}" if n >= 250 else f"127.0.0.{n}"

    return [f"http://{host(i)}:{port}/data/{i}.nc" for i in range(count)]


def latest(stats: Any) -> tuple[int, int]:
    """Requests served so far, and the most any host held at once since the last read."""
    served, most = 0, 0
    while not stats.empty():
        served, seen = stats.get()
        most = max(most, seen)
    return served, most


async def prober_alone(targets: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (the CPU figure holds on a machine busy with other work)."""
    async with Prober(contact_url="https://example.org/bench", retries=0) as prober:
        started, cpu = time.perf_counter(), time.process_time()
        probes = []
        ordered = by_host(targets)
        for start in range(0, len(ordered), BATCH):  # as `priorizer probe` does
            batch = ordered[start : start + BATCH]
            probes += await asyncio.gather(*(prober.probe(url) for url in batch))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    bad = [p for p in probes if p.size_bytes != SIZE]
    if bad:
        sys.exit(f"{len(bad)} probes failed, e.g. {bad[0]}")
    return elapsed, cpu


def pg_admin(*statements: str) -> None:
    engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def end_to_end(targets: list[str], database: str) -> tuple[float, dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-probe-"))
    env = {**os.environ, "DATA_DIRECTORY": str(workdir), "LOG_LEVEL": "WARNING"}
    drop = None
    if database == "postgresql":
        drop = "priorizer_bench_probe"
        pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)', f'CREATE DATABASE "{drop}"')
        env["DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + drop
    try:
        (workdir / "urls.txt").write_text("\n".join(targets))
        imported = subprocess.run(
            [str(PRIORIZER), "import-urls", str(workdir / "urls.txt")],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if imported.returncode != 0:
            sys.exit(f"import-urls failed:\n{imported.stderr[-3000:]}")
        started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [str(PRIORIZER), "probe", "--limit", str(len(targets))],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            sys.exit(f"probe failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report["cpu_seconds"] = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
        return elapsed, report
    finally:
        if drop:
            pg_admin(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=20_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()

    port = free_port()
    ready, stats = multiprocessing.Queue(), multiprocessing.Queue()
    origin = multiprocessing.Process(
        target=serve, args=(port, args.latency_ms / 1000, ready, stats), daemon=True
    )
    origin.start()
    ready.get(timeout=30)
    targets = urls(args.urls, args.hosts, port)
    try:
        alone, cpu = run(prober_alone(targets))  # on the loop `priorizer probe` runs
        time.sleep(0.5)
        _served, most_alone = latest(stats)
        elapsed, report = end_to_end(targets, args.database)
        time.sleep(0.5)
        _served, most_e2e = latest(stats)
    finally:
        origin.terminate()
    print(
        f"{args.urls:,} URLs over {args.hosts:,} hosts, origin latency {args.latency_ms:g} ms, "
        "PROBE_CONCURRENCY 64, PROBE_HOST_CONCURRENCY 2"
    )
    print(
        f"  prober alone: {args.urls / alone:,.0f} URLs/s ({alone:.2f} s; "
        f"{args.urls / cpu:,.0f} URLs per CPU second); most at once per host: {most_alone}"
    )
    print(
        f"  priorizer probe, {args.database}: {args.urls / elapsed:,.0f} URLs/s start to exit "
        f"({elapsed:.2f} s), {report['probed'] / report['seconds']:,.0f} URLs/s once started "
        f"({report['seconds']:.2f} s), {args.urls / report['cpu_seconds']:,.0f} URLs per CPU "
        f"second (start included); most at once per host: {most_e2e}"
    )
    if report["probed"] != args.urls or report["files"] != args.urls:
        sys.exit(f"not every URL was probed as a file: {report}")


if __name__ == "__main__":
    main()
