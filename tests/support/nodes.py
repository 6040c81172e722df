"""Rescue nodes in tests: a real `priorizer serve`, a local origin, and `priorizer node`
processes, with the reads that check what happened."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.origin import Origin
from tests.support.priorizer_server import (
    PRIORIZER,
    PriorizerServer,
    clean_environment,
    describe,
    run_cli,
)

MIB = 1 << 20
# Nodes on loopback: torrents listen on a port of their own, and nothing leaves the machine.
LOCAL_TORRENTS = ("--listen", "127.0.0.1:0", "--no-peer-discovery")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll `check` until it returns something true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s")


@dataclass
class Campaign:
    server: PriorizerServer
    origin: Origin
    workdir: Path

    # --- the catalog ------------------------------------------------------------------------

    def catalog(self, rows: Sequence[dict[str, Any]]) -> None:
        """Add assets (the seed's row shape) to the running server's catalog."""
        path = self.workdir / f"catalog-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(list(rows)))
        result = run_cli(["import-json", str(path)], self.server.env)
        assert result.returncode == 0, describe(result)

    # --- nodes ------------------------------------------------------------------------------

    def node_args(self, directory: Path, *extra: str) -> list[str]:
        return [
            "node",
            "--server",
            self.server.base_url,
            "--dir",
            str(directory),
            "--log-format",
            "json",
            *LOCAL_TORRENTS,
            *extra,
        ]

    def run_node(
        self, directory: Path, *extra: str, timeout: float = 90.0
    ) -> subprocess.CompletedProcess[str]:
        """`priorizer node ... --exit-when-idle` to its end."""
        args = self.node_args(directory, "--exit-when-idle", *extra)
        return run_cli(args, {}, timeout=timeout)

    def start_node(self, directory: Path, *extra: str) -> NodeProcess:
        return NodeProcess(self.node_args(directory, *extra), self.workdir / directory.name)

    # --- reads ------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        with httpx.Client(base_url=self.server.base_url, timeout=30) as client:
            response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def allocations(self, **filters: Any) -> list[dict[str, Any]]:
        return list(self.get("/allocations", limit=1000, **filters)["items"])

    def asset(self, asset_id: str) -> dict[str, Any]:
        return dict(self.get(f"/assets/{asset_id}"))


class NodeProcess:
    """`priorizer node` running in the background; its output goes to files."""

    def __init__(self, args: list[str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = logs / "node.out", logs / "node.err"
        self._files: list[IO[bytes]] = [self.stdout_path.open("wb"), self.stderr_path.open("wb")]
        self.process = subprocess.Popen(
            [str(PRIORIZER), *args],
            env=clean_environment({}),
            stdout=self._files[0],
            stderr=self._files[1],
            stdin=subprocess.DEVNULL,
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is not None:
                self._close()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._close()
        return self.process.returncode

    def _close(self) -> None:
        for handle in self._files:
            handle.close()

    def logs(self) -> str:
        for handle in self._files:
            if not handle.closed:
                handle.flush()
        return self.stderr_path.read_text(errors="replace")[-6000:]


def events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a node's output."""
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found
