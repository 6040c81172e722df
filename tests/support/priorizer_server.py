"""Real `priorizer` processes for end-to-end tests: the server, and one-shot CLI commands.

`PriorizerServer` starts `priorizer serve` (the installed console script) on a free port, waits
until GET /health answers 200, and stops it with SIGTERM (SIGKILL after a timeout). Its stdout and
stderr go to files under the test's tmp_path, and every failure message quotes them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from priorizer.config import Settings

PRIORIZER = Path(sys.executable).parent / "priorizer"

# Every variable Settings reads, so the caller's shell cannot leak into a test's server.
SETTINGS_VARIABLES = frozenset(
    choice.upper()
    for field in Settings.model_fields.values()
    if field.validation_alias is not None
    for choice in getattr(field.validation_alias, "choices", [field.validation_alias])
    if isinstance(choice, str)
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment without any Priorizer setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env["PROBE_INTERVAL_MINUTES"] = "0"  # no test's server probes the URLs of its catalog
    env.update(extra)
    return env


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one `priorizer` command to its end (bounded), with a clean environment plus `env`."""
    return subprocess.run(
        [str(PRIORIZER), *args],
        env=clean_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {result.returncode}\n--- stdout ---\n{result.stdout}\n"
        f"--- stderr ---\n{result.stderr}"
    )


class ServerDied(RuntimeError):
    pass


class PriorizerServer:
    """`priorizer serve` in its own process, as a context manager.

    env: the settings to give it (DATABASE_URL, ...). DATA_DIRECTORY defaults to a directory
    under `tmp_path`; PRIORIZER_PORT is always a fresh free port (`self.port`).
    """

    def __init__(
        self,
        tmp_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        args: Sequence[str] = (),
        name: str = "server",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name
        self.workdir = tmp_path / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "DATA_DIRECTORY": str(self.workdir / "data"),
            "PRIORIZER_HOST": "127.0.0.1",
            # Scheduled cycles fire on slots aligned to the clock, so one may fall inside any
            # test: without this its priority refresh would move the priorities tests check.
            "PRIORITY_JITTER": "0",
            # Load tests send more than a real node would; the limits have tests of their own.
            "RATE_LIMIT_PER_NODE": "1000000/minute",
            "RATE_LIMIT_PER_ADDRESS": "1000000/minute",
            # Their many new nodes all ask from loopback (the cap has tests of its own).
            "UNPROVEN_LEASES_PER_ADDRESS": "0",
            **(env or {}),
            "PRIORIZER_PORT": str(self.port),
        }
        self.args = ["serve", *args]
        self.start_timeout = start_timeout
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.killed = False
        self._files: list[IO[bytes]] = []

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> PriorizerServer:
        """Launch the process and wait until it is healthy."""
        self.launch()
        self.wait_healthy()
        return self

    def launch(self) -> PriorizerServer:
        """Launch the process without waiting (to start several at once); then `wait_healthy`."""
        stdout = self.stdout_path.open("wb")
        stderr = self.stderr_path.open("wb")
        self._files = [stdout, stderr]
        self.process = subprocess.Popen(
            [str(PRIORIZER), *self.args],
            env=clean_environment(self.env),
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        return self

    def wait_healthy(self) -> None:
        """Wait (bounded) for GET /health to answer 200; stop the process and raise otherwise."""
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise ServerDied(
                        f"{self.name} exited with {self.process.returncode} before it was "
                        f"healthy\n{self.logs()}"
                    )
                try:
                    response = client.get("/health")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as error:
                    last = f"{type(error).__name__}: {error}"
                time.sleep(0.1)
        raise TimeoutError(
            f"{self.name} not healthy after {self.start_timeout}s (last: {last})\n{self.logs()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                process.kill()
                process.wait(timeout=timeout)
        if process is not None:
            self.returncode = process.returncode
        for handle in self._files:
            handle.close()
        self._files = []
        return self.returncode

    @property
    def stopped_cleanly(self) -> bool:
        """Exited by itself after SIGTERM, without SIGKILL. Uvicorn shuts down gracefully, then
        re-raises the signal it caught, so the exit status is 0 or "killed by SIGTERM"."""
        return not self.killed and self.returncode in (0, -signal.SIGTERM)

    def __enter__(self) -> PriorizerServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- helpers ----------------------------------------------------------------------------

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("timeout", 60.0)
        return httpx.Client(base_url=self.base_url, **kwargs)  # type: ignore[arg-type]

    def logs(self) -> str:
        for handle in self._files:
            handle.flush()
        parts = []
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {self.name} {label} ({path}) ---\n{text[-8000:]}")
        return "\n".join(parts)
