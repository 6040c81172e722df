"""The agent's loop: ask the server for work that fits, download it N at a time, report each
file, renew the leases while they run, and give back what is unfinished when stopped.

Threads: the main thread talks to the server and owns the loop; each download runs in a worker
thread (`jobs.Worker`), and only reports its outcome back.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from priorizer.agent import download
from priorizer.agent.client import ServerClient, ServerError, ServerUnavailable
from priorizer.agent.download import Budget
from priorizer.agent.jobs import Job, Outcome, Worker
from priorizer.agent.progress import Reporter
from priorizer.agent.seeding import Torrents, TorrentSettings
from priorizer.agent.state import FAILED, HELD, NodeState

GIB = 1 << 30
# Kept free on the disk when no --max-gb is given: the node's owner needs some too.
DISK_RESERVE_BYTES = 1 * GIB
# A lease is renewed once this share of its lifetime has passed.
RENEW_AT = 0.5
# An asset this node failed is not tried again for this long (the server may offer it back).
RETRY_FAILED_AFTER = timedelta(hours=24)
# How often unacknowledged reports are sent again while the server is unreachable.
RESEND_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class AgentConfig:
    server: str
    directory: Path
    node_id: str | None = None
    token: str | None = None
    max_bytes: int | None = None  # None: the disk's free space less DISK_RESERVE_BYTES
    concurrency: int = 4
    exit_when_idle: bool = False
    seed: bool = False
    torrents: TorrentSettings = field(default_factory=TorrentSettings)
    idle_wait: float = 5.0
    idle_wait_max: float = 300.0
    peer_timeout: float = 300.0
    connect_timeout: float = 15.0
    read_timeout: float = 60.0


class Refused(Exception):
    """The server refuses the node's requests for good: the agent stops."""


class Agent:
    def __init__(self, config: AgentConfig, reporter: Reporter) -> None:
        self.config = config
        self.reporter = reporter
        self.stop = threading.Event()
        self.state = NodeState(config.directory)
        self.node_id = self.state.node_id(config.node_id)
        self.state.set_meta("server", config.server)
        self.client = ServerClient(
            config.server, node_id=self.node_id, token=config.token, interrupt=self.stop
        )
        self.budget = Budget(self._initial_budget())
        self.torrents = Torrents(config.torrents)
        self.http = download.new_client(
            user_agent=f"priorizer-node/0.1 ({self.node_id})",
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )
        self.worker = Worker(
            state=self.state,
            http=self.http,
            budget=self.budget,
            stop=self.stop,
            reporter=reporter,
            torrents=self.torrents,
            seed=config.seed,
            peer_timeout=config.peer_timeout,
        )
        self.waiting: deque[Job] = deque()
        self.running: dict[Future[Outcome], Job] = {}
        self.unfinished: list[Job] = []
        self._last_resend = time.monotonic()
        self.next_ask = 0.0  # monotonic time of the next /allocate

    def _initial_budget(self) -> int:
        used = self.state.bytes_on_disk()
        if self.config.max_bytes is not None:
            return max(0, self.config.max_bytes - used)
        return max(0, shutil.disk_usage(self.config.directory).free - DISK_RESERVE_BYTES)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> int:
        self._install_signals()
        self.reporter.event("start", f"node {self.node_id} on {self.config.server}")
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="download")
        code = 0
        try:
            self._recover()
            self._loop(pool)
        except Refused as error:
            self.reporter.event("error", str(error))
            code = 2
        finally:
            self.stop.set()
            pool.shutdown(wait=True)
            self._drain()
            self._give_back()
            self._close()
        return code

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            self.reporter.event("stop", f"{signal.Signals(signum).name}: finishing up")
            self.stop.set()
            signal.signal(signum, signal.SIG_DFL)  # a second one stops at once

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)

    def _recover(self) -> None:
        """After a restart: send what the server did not acknowledge, seed what is held, and
        take up the leases still open on the server."""
        self._resend()
        if self.config.seed:
            for record in self.state.all(status=HELD):
                path = self.config.directory / record.path
                if path.exists():
                    self.state.set_magnet(record.asset_id, self.torrents.seed(path))
        try:
            leases = self.client.leases()
        except (ServerUnavailable, ServerError) as error:
            self.reporter.event("warning", f"cannot list open leases: {error}")
            return
        if leases:
            self.reporter.event("resume", f"{len(leases)} open leases from before")
        self._take(leases)

    def _loop(self, pool: ThreadPoolExecutor) -> None:
        backoff = self.config.idle_wait
        while not self.stop.is_set():
            now = time.monotonic()
            if self._has_room() and now >= self.next_ask:
                new = self._ask()
                if new is None or new == 0:
                    if new == 0 and not self.waiting and not self.running:
                        if self.config.exit_when_idle:
                            self.reporter.event("idle", "nothing more to do: exiting")
                            return
                        self.reporter.event("idle", f"nothing to do; next ask in {backoff:.0f}s")
                    self.next_ask = now + backoff
                    backoff = min(backoff * 2, self.config.idle_wait_max)
                else:
                    backoff = self.config.idle_wait
            self._start(pool)
            self._renew_if_due()
            if now - self._last_resend > RESEND_SECONDS:
                self._resend()
            self._collect(timeout=max(0.05, min(0.5, self.next_ask - time.monotonic())))

    def _has_room(self) -> bool:
        return len(self.waiting) + len(self.running) < self.config.concurrency

    def _start(self, pool: ThreadPoolExecutor) -> None:
        while self.waiting and len(self.running) < self.config.concurrency:
            job = self.waiting.popleft()
            url = job.item["url"]
            self.reporter.event("download", f"{job.name} from {url}", asset=job.asset_id)
            self.running[pool.submit(self.worker.run, job)] = job

    def _collect(self, *, timeout: float) -> None:
        if not self.running:
            self.stop.wait(timeout)
            return
        done, _ = wait(list(self.running), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            self.running.pop(future)
            self._settle(future.result())
            self.next_ask = 0.0  # a slot is free: ask again now

    def _drain(self) -> None:
        """After the workers stopped: settle what they finished, keep the rest to give back."""
        for future in list(self.running):
            self._settle(future.result())
        self.running.clear()
        self.unfinished += list(self.waiting)
        self.waiting.clear()

    # --- talking to the server --------------------------------------------------------------

    def _free_gb(self) -> float:
        """Free space to report: what the node may still write, plus what its open leases'
        partial files hold already (the server subtracts those leases' whole size)."""
        available = self.budget.available
        if self.config.max_bytes is None:
            disk = shutil.disk_usage(self.config.directory).free - DISK_RESERVE_BYTES
            available = min(available, max(0, disk))
        for job in [*self.waiting, *self.running.values()]:
            partial = job.target(self.state).partial
            available += partial.stat().st_size if partial.exists() else 0
        return available / GIB

    def _ask(self) -> int | None:
        """Ask for work; the number of new downloads (None: the server did not answer)."""
        free_gb = self._free_gb()
        if free_gb <= 0:
            return 0
        try:
            items = self.client.allocate(free_space_gb=free_gb)
        except ServerUnavailable as error:
            self.reporter.event("warning", f"allocate: {error}")
            return None
        except ServerError as error:
            # Refused (a wrong or missing token, a bad node id): asking again cannot help.
            raise Refused(f"the server refuses this node's requests: {error}") from error
        if items:
            self.reporter.event("allocated", f"{len(items)} assets", free_gb=round(free_gb, 3))
        return self._take(items)

    def _take(self, items: list[dict[str, Any]]) -> int:
        """Queue the leased items worth downloading; report held ones, give back recent failures."""
        new = 0
        for item in items:
            job = Job(item, _expiry(item))
            record = self.state.get(job.asset_id)
            held = record is not None and record.status == HELD
            if held and (self.config.directory / record.path).exists():  # type: ignore[union-attr]
                self._report_complete(job.asset_id)  # held already: never fetched twice
                continue
            if record is not None and record.status == FAILED and _recent(record.updated_at):
                self._release(job.asset_id, why="failed here recently")
                continue
            if any(j.asset_id == job.asset_id for j in [*self.waiting, *self.running.values()]):
                continue
            self.waiting.append(job)
            new += 1
        return new

    def _settle(self, outcome: Outcome) -> None:
        job = outcome.job
        if outcome.interrupted:
            self.unfinished.append(job)
        elif outcome.failure is not None:
            code, reason = outcome.failure
            self.reporter.event("failed", f"{job.name}: {reason}", asset=job.asset_id, code=code)
            self._report_failure(job.asset_id, code, reason)
        elif outcome.fetched is not None:
            fetched = outcome.fetched
            source = "peers" if outcome.from_peers else "origin"
            self.reporter.event(
                "done",
                f"{job.name} from {source}",
                asset=job.asset_id,
                bytes=fetched.size_bytes,
                sha256=fetched.sha256,
            )
            self._report_complete(job.asset_id)

    def _report_complete(self, asset_id: str) -> None:
        record = self.state.get(asset_id)
        assert record is not None and record.sha256 is not None and record.size_bytes is not None
        try:
            answer = self.client.complete(
                asset_id,
                checksum_sha256=record.sha256,
                size_bytes=record.size_bytes,
                magnet_link=record.magnet_link,
            )
        except ServerUnavailable as error:
            self.reporter.event("warning", f"complete {asset_id}: {error}; will send again")
            return
        except ServerError as error:
            # No lease to complete (it was given to others), or a checksum the server already
            # has another of: nothing more to say; the file stays.
            self.reporter.event("warning", f"complete {asset_id} refused: {error}")
        else:
            if answer.get("conflicting_copies"):
                self.reporter.event("conflict", f"{asset_id}: copies disagree", asset=asset_id)
        self.state.mark_reported(asset_id)

    def _report_failure(self, asset_id: str, code: str, reason: str) -> None:
        reported = True
        try:
            self.client.fail(asset_id, code=code, reason=reason)
        except ServerUnavailable:
            reported = False
        except ServerError as error:
            self.reporter.event("warning", f"fail {asset_id} refused: {error}")
        self.state.fail(asset_id, code=code, reason=reason, reported=reported)

    def _resend(self) -> None:
        self._last_resend = time.monotonic()
        for record in self.state.unreported(HELD):
            self._report_complete(record.asset_id)
        for record in self.state.unreported(FAILED):
            assert record.reason_code is not None
            self._report_failure(record.asset_id, record.reason_code, record.reason or "")

    def _release(self, asset_id: str, *, why: str) -> None:
        try:
            self.client.release(asset_id)
            self.reporter.event("released", f"{asset_id}: {why}", asset=asset_id)
        except (ServerUnavailable, ServerError) as error:
            self.reporter.event("warning", f"release {asset_id}: {error}")

    def _renew_if_due(self) -> None:
        jobs = [*self.waiting, *self.running.values()]
        now = time.time()
        if not any(_renewal_due(job, now) for job in jobs):
            return
        try:
            answer = self.client.renew([job.asset_id for job in jobs])
        except (ServerUnavailable, ServerError) as error:
            self.reporter.event("warning", f"renew: {error}")
            return
        lost = set(answer.get("not_renewed") or [])
        expires_at = _expiry(answer)
        for job in jobs:
            # A lease not renewed has expired: the server still takes its completion (late).
            job.granted_at = now
            if job.asset_id not in lost and expires_at is not None:
                job.expires_at = expires_at
            elif job.asset_id in lost:
                job.expires_at = None
        self.reporter.event("renewed", f"{answer.get('renewed', 0)} leases", lost=len(lost))

    def _give_back(self) -> None:
        """Stopping: release the leases not finished; their partial files stay for next time."""
        self.client.attempts = 2
        for job in self.unfinished:
            self._release(job.asset_id, why="stopping; partial file kept")

    def _close(self) -> None:
        self.reporter.close()
        self.http.close()
        self.client.close()
        self.torrents.close()
        self.state.close()


def _expiry(item: dict[str, Any]) -> datetime | None:
    value = item.get("expires_at")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _renewal_due(job: Job, now: float) -> bool:
    if job.expires_at is None:
        return False
    lifetime = job.expires_at.timestamp() - job.granted_at
    return now >= job.granted_at + max(0.0, lifetime) * RENEW_AT


def _recent(updated_at: str) -> bool:
    return datetime.now(UTC) - datetime.fromisoformat(updated_at) < RETRY_FAILED_AFTER
