"""A local HTTP origin for rescue-node tests: files served with `Range` support, and every way
an origin misbehaves that a node must survive.

Runs in a thread of the test process (a real server on a loopback port); routes can change
while it runs (a file corrupted, or gone), and every request is logged (method, path, Range,
User-Agent) so tests can tell which node fetched what, and whether it resumed.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

Kind = Literal["file", "status", "redirect", "html", "drop", "lying-length", "no-length", "big"]
CHUNK = 64 * 1024


@dataclass
class Route:
    kind: Kind
    body: bytes = b""
    source: Path | None = None  # a file on disk, sent with sendfile (benchmarks)
    status: int = 200
    location: str = ""
    rate: float | None = None  # bytes per second, for slow files
    declared: int | None = None  # the Content-Length claimed, where it lies

    @property
    def size(self) -> int:
        return self.source.stat().st_size if self.source is not None else len(self.body)

    @property
    def sha256(self) -> str:
        if self.source is None:
            return hashlib.sha256(self.body).hexdigest()
        digest = hashlib.sha256()
        with open(self.source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    user_agent: str

    @property
    def node(self) -> str:
        """The node id an agent puts in its User-Agent: `priorizer-node/0.1 (ID)`."""
        match = re.search(r"\(([^)]*)\)", self.user_agent)
        return match.group(1) if match else ""


@dataclass
class Origin:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # --- set-up -----------------------------------------------------------------------------

    def add(self, path: str, route: Route) -> str:
        with self._lock:
            self.routes[path] = route
        return self.url(path)

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self) -> Origin:
        handler = type("Handler", (_Handler,), {"origin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Origin:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- what happened ----------------------------------------------------------------------

    def log(self, path: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _route(self, path: str) -> Route | None:
        with self._lock:
            return self.routes.get(path)


class _Handler(BaseHTTPRequestHandler):
    origin: Origin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the origin keeps its own log

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.origin._record(
            Request(
                self.command, path, self.headers.get("Range"), self.headers.get("User-Agent", "")
            )
        )
        route = self.origin._route(path)
        if route is None:
            self._plain(404, b"not found")
            return
        try:
            getattr(self, "_" + route.kind.replace("-", "_"))(route)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # --- the kinds of route -----------------------------------------------------------------

    def _status(self, route: Route) -> None:
        self._plain(route.status, f"status {route.status}".encode())

    def _redirect(self, route: Route) -> None:
        self.send_response(302)
        self.send_header("Location", route.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _html(self, route: Route) -> None:
        self._plain(200, route.body, "text/html; charset=utf-8")

    def _file(self, route: Route) -> None:
        start, end = self._range(route.size)
        if start is None:
            return
        self.send_response(206 if self.headers.get("Range") else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if self.headers.get("Range"):
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{route.size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        if route.source is not None and route.rate is None:
            with open(route.source, "rb") as handle:
                self.connection.sendfile(handle, start, end - start)
            return
        self._send(route, start, end, rate=route.rate)

    def _drop(self, route: Route) -> None:
        """Declares the whole rest, but cuts the connection at the file's middle: a request
        that starts past the middle (a resume) gets the rest whole."""
        start, end = self._range(route.size)
        if start is None:
            return
        self.send_response(206 if self.headers.get("Range") else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if self.headers.get("Range"):
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{route.size}")
        self.end_headers()
        middle = route.size // 2
        self._send(route, start, middle if start < middle else end, rate=None)
        self.close_connection = True
        self.connection.shutdown(2)

    def _lying_length(self, route: Route) -> None:
        """Claims `declared` bytes and sends the whole body."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(route.declared))
        self.end_headers()
        self.wfile.write(route.body)
        self.close_connection = True

    def _no_length(self, route: Route) -> None:
        """No Content-Length: the body ends when the connection closes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self._send(route, 0, route.size, rate=route.rate)
        self.close_connection = True

    def _big(self, route: Route) -> None:
        """Declares `declared` bytes, far more than the catalog says (and sends a little)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(route.declared))
        self.end_headers()
        self.wfile.write(route.body)
        self.close_connection = True

    # --- helpers ----------------------------------------------------------------------------

    def _range(self, size: int) -> tuple[int | None, int]:
        wanted = self.headers.get("Range")
        if not wanted:
            return 0, size
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        if match is None or int(match.group(1)) >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None, 0
        end = int(match.group(2)) + 1 if match.group(2) else size
        return int(match.group(1)), min(end, size)

    def _send(self, route: Route, start: int, end: int, *, rate: float | None) -> None:
        began = time.monotonic()
        sent = 0
        for chunk in _chunks(route, start, end):
            self.wfile.write(chunk)
            sent += len(chunk)
            if rate:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)  # throttling the origin, not waiting on the test

    def _plain(self, status: int, body: bytes, kind: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _chunks(route: Route, start: int, end: int) -> Iterator[bytes]:
    if route.source is None:
        view = memoryview(route.body)
        for offset in range(start, end, CHUNK):
            yield bytes(view[offset : min(end, offset + CHUNK)])
        return
    with open(route.source, "rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0 and (chunk := handle.read(min(CHUNK, left))):
            left -= len(chunk)
            yield chunk


def random_bytes(n: int, seed: int) -> bytes:
    """Incompressible, reproducible content (random.randbytes of a seeded generator)."""
    import random

    return random.Random(seed).randbytes(n)


def write_random_file(path: Path, n: int, seed: int) -> Path:
    with open(path, "wb") as handle:
        for offset in range(0, n, 1 << 20):
            handle.write(random_bytes(min(1 << 20, n - offset), seed + offset))
    os.sync()
    return path
