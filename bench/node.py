"""Benchmark: how fast `priorizer node` downloads from a local origin, next to `curl` fetching
the same files from the same origin in the same run, and the agent's CPU per GiB.

    python bench/node.py --files 8 --mb 128 --concurrency 4 --rounds 2
    python bench/node.py --files 8 --mb 128 --rate 40   # origins at a remote link's pace

The origin (tests/support/origin.py) serves files from disk with sendfile; a real `priorizer
serve` hands them out. curl fetches them --concurrency at a time (`curl --parallel`); the agent
runs with --concurrency and --exit-when-idle. Both write into the same filesystem. The agent's
figure is from its start to its exit (asking, reporting and its own start-up included); its
CPU is the process's user + system time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support: the origin and the server helpers

from tests.support.origin import Origin, Route, write_random_file  # noqa: E402
from tests.support.priorizer_server import PRIORIZER, PriorizerServer, clean_environment, run_cli  # noqa: E402

MIB = 1 << 20


def fetch_with_curl(urls: list[str], into: Path, concurrency: int) -> tuple[float, float]:
    """Seconds and CPU seconds curl took."""
    into.mkdir(parents=True)
    args = ["curl", "--silent", "--fail", "--parallel", "--parallel-max", str(concurrency)]
    for i, url in enumerate(urls):
        args += ["-o", str(into / f"file-{i}.bin"), url]
    started = time.perf_counter()
    process = subprocess.Popen(args)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "curl failed"
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def fetch_with_agent(
    server: PriorizerServer, into: Path, concurrency: int
) -> tuple[float, float, float, int]:
    """Seconds from start to exit, seconds from its first download's start to its last
    download's end, CPU seconds, and the files it reported done."""
    args = [
        str(PRIORIZER),
        "node",
        "--server",
        server.base_url,
        "--dir",
        str(into),
        "--exit-when-idle",
        "--concurrency",
        str(concurrency),
        "--max-gb",
        "1000",
        "--log-format",
        "json",
    ]
    log = into.parent / f"{into.name}.log"
    started = time.perf_counter()
    with log.open("wb") as stderr:
        process = subprocess.Popen(args, env=clean_environment({}), stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the agent failed: see {log}")
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    done = [e for e in events if e["event"] == "done"]
    first = min(e["time"] for e in events if e["event"] == "download")
    span = (_moment(max(e["time"] for e in done)) - _moment(first)) if done else float("nan")
    return elapsed, span, usage.ru_utime + usage.ru_stime, len(done)


def _moment(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--mb", type=int, default=128, help="MiB per file")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="MiB/s the origin sends per connection (a remote origin's pace); default: unlimited",
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed: apt-get install curl")

    workdir = Path(tempfile.mkdtemp(prefix="priorizer-bench-node-"))
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path) -> None:
    sources = workdir / "origin"
    sources.mkdir()
    total = args.files * args.mb * MIB
    gib = total / (1 << 30)
    with Origin() as origin, PriorizerServer(workdir, {"REPLICATION_TARGET": "1"}) as server:
        for i in range(args.files):
            path = write_random_file(sources / f"file-{i}.bin", args.mb * MIB, seed=i)
            rate = args.rate * MIB if args.rate else None
            origin.add(f"/file-{i}.bin", Route("file", source=path, rate=rate))
        urls = [origin.url(f"/file-{i}.bin") for i in range(args.files)]
        print(
            f"{args.files} files of {args.mb} MiB ({total / MIB:,.0f} MiB), "
            f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, origin pace "
            + (f"{args.rate} MiB/s per connection" if args.rate else "unlimited")
        )
        for round_ in range(1, args.rounds + 1):
            curl_seconds, curl_cpu = fetch_with_curl(
                urls, workdir / f"curl-{round_}", args.concurrency
            )
            catalog = workdir / f"catalog-{round_}.json"
            rows = [
                {
                    "id": f"r{round_}-{i}",
                    "url": f"{url}?round={round_}",
                    "name": f"file-{i}.bin",
                    "size_mb": args.mb,
                    "priority": 5,
                }
                for i, url in enumerate(urls)
            ]
            catalog.write_text(json.dumps(rows))
            imported = run_cli(["import-json", str(catalog)], server.env)
            assert imported.returncode == 0, imported.stderr
            seconds, span, cpu, done = fetch_with_agent(
                server, workdir / f"agent-{round_}", args.concurrency
            )
            assert done == args.files, f"the agent finished {done} of {args.files} files"
            curl_rate, agent_rate = total / MIB / curl_seconds, total / MIB / seconds
            print(
                f"round {round_}: curl {curl_rate:5.0f} MiB/s ({curl_seconds:5.2f} s) | agent "
                f"{agent_rate:5.0f} MiB/s start to exit ({seconds:5.2f} s) = "
                f"{agent_rate / curl_rate:.2f}x curl; downloads alone "
                f"{total / MIB / span:5.0f} MiB/s = {total / MIB / span / curl_rate:.2f}x curl | "
                f"CPU per GiB: agent {cpu / gib:.2f} s, curl {curl_cpu / gib:.2f} s"
            )
            shutil.rmtree(workdir / f"curl-{round_}")
            shutil.rmtree(workdir / f"agent-{round_}")


if __name__ == "__main__":
    main()
