"""One file from its origin to the node's disk: streamed, hashed as it is written, resumed with
a `Range` request after a dropped connection or a restart, and never larger than allowed.

The file grows under a partial name and is renamed only when whole and checked, so a file
under its real name is always one whose SHA-256 was computed from the bytes written.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

# Reason codes sent with /fail. Asset-side: the asset's fault, counted toward its failure
# threshold. Node-side: this node's circumstances, never counted against the asset.
HTTP_404, HTTP_410, HTTP_ERROR, CONNECTION = "http_404", "http_410", "http_error", "connection"
NOT_A_FILE, TOO_LARGE, SIZE_MISMATCH = "not_a_file", "too_large", "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"
DISK_FULL, SHUTTING_DOWN, NODE_ERROR = "disk_full", "shutting_down", "node_error"

CHUNK_BYTES = 1 << 20
MIB = 1 << 20
# A size from the catalog is a hint (rounded, and files change upstream): a body may differ
# from it by this share, or by SIZE_SLACK_BYTES, whichever is more. An exact size (from a copy
# already reported) must match exactly.
SIZE_SLACK_SHARE = 0.05
SIZE_SLACK_BYTES = 1 * MIB
MAX_REDIRECTS = 5
ATTEMPTS = 5
HTML_TYPES = ("text/html", "application/xhtml+xml")
HTML_FORMATS = frozenset({"html", "htm", "xhtml", "web page", "webpage"})
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)


class DownloadFailed(Exception):
    """The file cannot be had: `code` is the reason code to report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(Exception):
    """The agent is stopping: the partial file stays for the next start."""


class _Transient(Exception):
    """Worth another try: a dropped connection, a timeout, a 5xx or 429."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    path: Path  # the final name
    partial: Path  # the name while it grows
    exact_bytes: int | None = None  # known exactly: the file must have this size
    approx_bytes: int | None = None  # the catalog's size: a hint within a margin
    expected_sha256: str | None = None
    accepts_html: bool = False

    @property
    def limit_bytes(self) -> int | None:
        """The most this file may take on disk."""
        if self.exact_bytes is not None:
            return self.exact_bytes
        if self.approx_bytes is not None:
            return self.approx_bytes + _slack(self.approx_bytes)
        return None


@dataclass(frozen=True, slots=True)
class Fetched:
    size_bytes: int
    sha256: str
    resumed_from: int


def _slack(size: int) -> int:
    return max(SIZE_SLACK_BYTES, int(size * SIZE_SLACK_SHARE))


class Budget:
    """Bytes the node may still write, shared by its downloads (`--max-gb`)."""

    def __init__(self, available: int) -> None:
        self._available = available
        self._lock = threading.Lock()

    @property
    def available(self) -> int:
        return self._available

    def take(self, n: int) -> bool:
        with self._lock:
            if n > self._available:
                return False
            self._available -= n
            return True

    def give(self, n: int) -> None:
        with self._lock:
            self._available += n


@dataclass(slots=True)
class Limits:
    attempts: int = ATTEMPTS
    wait_initial: float = 0.2
    wait_max: float = 5.0


def fetch(
    client: httpx.Client,
    target: Target,
    *,
    budget: Budget,
    stop: threading.Event,
    progress: Callable[[int], None] = lambda _n: None,
    limits: Limits | None = None,
) -> Fetched:
    """Download `target` (resuming its partial file), check it, rename it into place.

    Raises `DownloadFailed` with a reason code, or `Interrupted` when `stop` is set."""
    limits = limits or Limits()
    target.partial.parent.mkdir(parents=True, exist_ok=True)
    stream = _Stream(target, budget=budget, stop=stop, progress=progress)
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(limits.attempts),
            wait=wait_exponential(multiplier=limits.wait_initial, max=limits.wait_max),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        ):
            with attempt:
                stream.get(client)
    except _Transient as error:
        stream.close()
        raise DownloadFailed(error.code, f"{error} (after {limits.attempts} tries)") from error
    except BaseException:
        stream.close()
        raise
    stream.close()
    return _finish(target, stream)


def _finish(target: Target, stream: _Stream) -> Fetched:
    size, digest = stream.offset, stream.hasher.hexdigest()
    try:
        check_size(target, size)
        check_checksum(target, digest)
    except DownloadFailed:
        discard_partial(target, stream.budget)
        raise
    os.replace(target.partial, target.path)
    return Fetched(size, digest, stream.resumed_from)


def check_size(target: Target, size: int) -> None:
    """A whole file's size against what was expected: exactly, or the catalog's within slack."""
    if target.exact_bytes is not None and size != target.exact_bytes:
        raise DownloadFailed(
            SIZE_MISMATCH, f"got {size} bytes; the copies reported have {target.exact_bytes}"
        )
    approx = target.approx_bytes
    if target.exact_bytes is None and approx is not None and size < approx - _slack(approx):
        raise DownloadFailed(SIZE_MISMATCH, f"got {size} bytes; the catalog says about {approx}")


def check_checksum(target: Target, digest: str) -> None:
    expected = target.expected_sha256
    if expected is not None and digest != expected.lower():
        raise DownloadFailed(
            CHECKSUM_MISMATCH,
            f"SHA-256 {digest} differs from that of the copies already reported ({expected})",
        )


def discard_partial(target: Target, budget: Budget) -> None:
    """Delete the partial file, giving its bytes back to the budget."""
    try:
        size = target.partial.stat().st_size
    except FileNotFoundError:
        return
    target.partial.unlink()
    budget.give(size)


class _Stream:
    """The partial file and the running hash of its bytes, across attempts."""

    def __init__(
        self,
        target: Target,
        *,
        budget: Budget,
        stop: threading.Event,
        progress: Callable[[int], None],
    ) -> None:
        self.target, self.budget, self.stop, self.progress = target, budget, stop, progress
        self.hasher = hashlib.sha256()
        self.reserved = 0  # taken from the budget for bytes not yet written
        self.file: IO[bytes] = open(target.partial, "ab")  # noqa: SIM115 (kept across tries)
        self.offset = self.resumed_from = self.file.tell()
        if self.offset:
            self._rehash_prefix()

    def _rehash_prefix(self) -> None:
        """A restart lost the running hash: rebuild it from the bytes already on disk."""
        limit = self.target.limit_bytes
        if limit is not None and self.offset > limit:
            self._restart()
            return
        with open(self.target.partial, "rb") as prefix:
            while chunk := prefix.read(CHUNK_BYTES):
                self.hasher.update(chunk)
        self.progress(self.offset)

    def _restart(self) -> None:
        """Start the file over (the origin ignored our Range, or the partial is unusable)."""
        self.file.truncate(0)
        self.file.seek(0)
        self.budget.give(self.offset)
        self.progress(-self.offset)
        self.offset = self.resumed_from = 0
        self.hasher = hashlib.sha256()

    def close(self) -> None:
        self.budget.give(self.reserved)
        self.reserved = 0
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

    def get(self, client: httpx.Client) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        try:
            with client.stream("GET", self.target.url, headers=headers) as response:
                self._accept(response)
                self._copy(response)
        except httpx.TooManyRedirects as error:
            raise DownloadFailed(HTTP_ERROR, f"more than {MAX_REDIRECTS} redirects") from error
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
            # ftp: and the like: another node may fetch it; not the asset's fault.
            raise DownloadFailed(NODE_ERROR, f"this node cannot fetch it: {error}") from error
        except (httpx.TransportError, httpx.StreamError) as error:
            self.file.flush()
            raise _Transient(CONNECTION, f"{type(error).__name__}: {error}") from error

    def _accept(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 404:
            raise DownloadFailed(HTTP_404, "the origin answers 404 Not Found")
        if status == 410:
            raise DownloadFailed(HTTP_410, "the origin answers 410 Gone")
        if status == 416 and self.offset:
            self._restart()
            raise _Transient(HTTP_ERROR, "the origin refused our Range (416)")
        if status == 429 or status >= 500:
            raise _Transient(HTTP_ERROR, f"the origin answers {status}")
        if status not in (200, 206):
            raise DownloadFailed(HTTP_ERROR, f"the origin answers {status}")
        if status == 200 and self.offset:
            self._restart()  # it sent the whole file, not the rest
        elif status == 206 and not _starts_at(response, self.offset):
            self._restart()
            raise _Transient(HTTP_ERROR, "the origin sent another range than asked")
        self._check_type(response)
        self._check_declared(response)

    def _check_type(self, response: httpx.Response) -> None:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in HTML_TYPES and not self.target.accepts_html:
            raise DownloadFailed(NOT_A_FILE, f"the origin sends a web page ({kind}), not a file")

    def _check_declared(self, response: httpx.Response) -> None:
        """Refuse a declared length past the expected size, and reserve it in the budget up
        front: a file that cannot fit fails before a byte is written."""
        declared = response.headers.get("content-length")
        if declared is None or not declared.isdigit():
            return
        total, limit = self.offset + int(declared), self.target.limit_bytes
        if limit is not None and total > limit:
            raise DownloadFailed(
                TOO_LARGE, f"the origin declares {total} bytes; at most {limit} are expected"
            )
        self.budget.give(self.reserved)
        self.reserved = 0
        if not self.budget.take(int(declared)):
            raise DownloadFailed(
                DISK_FULL, f"the origin declares {total} bytes: more than the node may still use"
            )
        self.reserved = int(declared)

    def _copy(self, response: httpx.Response) -> None:
        limit = self.target.limit_bytes
        sniff = self.offset == 0 and not self.target.accepts_html
        # Chunks as they arrive (no re-chunking): a connection that drops loses no byte read.
        for chunk in response.iter_raw():
            if self.stop.is_set():
                raise Interrupted("stopping")
            if sniff:
                sniff = False
                if _HTML_START.match(chunk[:512]):
                    raise DownloadFailed(NOT_A_FILE, "the origin sends a web page, not a file")
            n = len(chunk)
            if limit is not None and self.offset + n > limit:
                raise DownloadFailed(
                    TOO_LARGE, f"the body passes {limit} bytes, more than the size expected"
                )
            covered = min(n, self.reserved)
            self.reserved -= covered
            if n > covered and not self.budget.take(n - covered):
                raise DownloadFailed(DISK_FULL, "the file does not fit what the node may use")
            self.file.write(chunk)
            self.hasher.update(chunk)
            self.offset += n
            self.progress(n)


_CONTENT_RANGE = re.compile(r"^bytes (\d+)-\d+/(\d+|\*)$")


def _starts_at(response: httpx.Response, offset: int) -> bool:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    return match is not None and int(match.group(1)) == offset


def _read_large_blocks() -> None:
    """httpcore reads responses 64 KiB at a time; a download's Python cost is per read, so a
    node reads 1 MiB at a time (a class attribute httpcore reads per connection)."""
    from httpcore._sync import http11

    http11.HTTP11Connection.READ_NUM_BYTES = CHUNK_BYTES


def new_client(*, user_agent: str, connect_timeout: float, read_timeout: float) -> httpx.Client:
    """The client downloads share: bounded redirects, timeouts, large reads."""
    _read_large_blocks()
    return httpx.Client(
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        headers={"User-Agent": user_agent},
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
    )


def accepts_html(file_format: str | None) -> bool:
    return (file_format or "").strip().lower() in HTML_FORMATS
