"""One leased asset's work, run in a worker thread: fetch it (from its origin, or from peers
when the origin is gone), record it held, seed it. The main thread reports the outcome."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from priorizer.agent import download
from priorizer.agent.download import Budget, DownloadFailed, Fetched, Interrupted, Target
from priorizer.agent.progress import Reporter
from priorizer.agent.seeding import PeerFetchFailed, Torrents
from priorizer.agent.state import NodeState

MIB = 1 << 20
PEER_DIR = ".from-peers"


@dataclass(slots=True)
class Job:
    """An open lease the agent works on, from /allocate or /nodes/{id}/leases."""

    item: dict[str, Any]
    expires_at: datetime | None
    granted_at: float = field(default_factory=time.time)  # when the lease was last extended

    @property
    def asset_id(self) -> str:
        return str(self.item["id"])

    @property
    def name(self) -> str:
        return str(self.item.get("name") or self.asset_id)

    @property
    def magnet_links(self) -> list[str]:
        return [str(link) for link in self.item.get("magnet_links") or []]

    def target(self, state: NodeState) -> Target:
        path = state.path_for(self.asset_id, self.name)
        size_mb = self.item.get("size_mb")
        exact = self.item.get("size_bytes")
        return Target(
            url=str(self.item["url"]),
            path=path,
            partial=state.partial_path(path),
            exact_bytes=int(exact) if exact is not None else None,
            approx_bytes=round(float(size_mb) * MIB) if size_mb is not None else None,
            expected_sha256=self.item.get("checksum_sha256"),
            accepts_html=download.accepts_html(self.item.get("format")),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    job: Job
    fetched: Fetched | None = None
    magnet_link: str | None = None
    failure: tuple[str, str] | None = None  # (reason code, text)
    interrupted: bool = False
    from_peers: bool = False


@dataclass(slots=True)
class Worker:
    """What every job needs; shared by the worker threads."""

    state: NodeState
    http: httpx.Client
    budget: Budget
    stop: threading.Event
    reporter: Reporter
    torrents: Torrents | None
    seed: bool
    peer_timeout: float

    def run(self, job: Job) -> Outcome:
        target = job.target(self.state)
        self.state.start(job.asset_id, url=target.url, name=job.name, path=target.path)
        self.reporter.file_started(
            job.asset_id, job.name, target.exact_bytes or target.approx_bytes
        )
        try:
            return self._run(job, target)
        except Interrupted:
            return Outcome(job, interrupted=True)
        except OSError as error:
            download.discard_partial(target, self.budget)
            code = download.DISK_FULL if error.errno == errno.ENOSPC else download.NODE_ERROR
            return Outcome(job, failure=(code, f"{type(error).__name__}: {error}"))
        except Exception as error:  # one asset's surprise must not stop the node
            download.discard_partial(target, self.budget)
            message = f"unexpected {type(error).__name__}: {error}"
            return Outcome(job, failure=(download.NODE_ERROR, message))
        finally:
            self.reporter.file_ended(job.asset_id)

    def _run(self, job: Job, target: Target) -> Outcome:
        from_peers = False
        try:
            fetched = download.fetch(
                self.http,
                target,
                budget=self.budget,
                stop=self.stop,
                progress=lambda n: self.reporter.file_advanced(job.asset_id, n),
            )
        except DownloadFailed as error:
            download.discard_partial(target, self.budget)
            if error.code not in (download.HTTP_404, download.HTTP_410) or not job.magnet_links:
                return Outcome(job, failure=(error.code, str(error)))
            try:
                fetched, from_peers = self._from_peers(job, target), True
            except DownloadFailed as peer_error:
                return Outcome(job, failure=(peer_error.code, f"{error}; {peer_error}"))
        self.state.hold(job.asset_id, size_bytes=fetched.size_bytes, sha256=fetched.sha256)
        magnet = self._seed(job, target.path) if self.seed else None
        return Outcome(job, fetched=fetched, magnet_link=magnet, from_peers=from_peers)

    def _seed(self, job: Job, path: Path) -> str | None:
        assert self.torrents is not None
        magnet = self.torrents.seed(path)
        self.state.set_magnet(job.asset_id, magnet)
        return magnet

    def _from_peers(self, job: Job, target: Target) -> Fetched:
        """The origin is gone: fetch the file from the nodes seeding it, then check it."""
        if self.torrents is None:
            raise DownloadFailed(download.NODE_ERROR, "peer fetch unavailable (no libtorrent)")
        expected = target.exact_bytes or target.approx_bytes or 0
        if not self.budget.take(expected):
            raise DownloadFailed(download.DISK_FULL, "the file does not fit what the node may use")
        scratch = target.path.parent / PEER_DIR
        try:
            got = self.torrents.fetch(
                job.magnet_links, into=scratch, timeout=self.peer_timeout, stop=self.stop
            )
            size = got.stat().st_size
            self.budget.give(expected)
            self.budget.take(size)  # on disk already: the budget only learns of it
            os.replace(got, target.partial)
        except PeerFetchFailed as error:
            self.budget.give(expected)
            if self.stop.is_set():
                raise Interrupted("stopping") from error
            raise DownloadFailed(download.CONNECTION, f"peers: {error}") from error
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return _check_whole(target, self.budget)


def _check_whole(target: Target, budget: Budget) -> Fetched:
    """Hash a file fetched from peers, from the disk, and accept it as `download` would."""
    digest = hashlib.sha256()
    size = 0
    with open(target.partial, "rb") as handle:
        while chunk := handle.read(download.CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    fetched = Fetched(size, digest.hexdigest(), 0)
    try:
        download.check_size(target, size)
        download.check_checksum(target, fetched.sha256)
    except DownloadFailed:
        download.discard_partial(target, budget)
        raise
    os.replace(target.partial, target.path)
    return fetched
