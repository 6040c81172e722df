"""The prober against a small local server: what the end-to-end discovery test does not reach
(retries of 5xx, the redirect limit, a read timeout, a compressed listing, a refused
connection), its User-Agent, and its per-host limit with many URLs of one host at once."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from priorizer.discovery.prober import Prober, run

LISTING = b"<html><body><a href='x.nc'>x.nc</a></body></html>"


class _Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = defaultdict(int)
        self.agents: set[str] = set()
        self.active = 0
        self.most = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                server.answer(self, body=False)

            def do_GET(self) -> None:
                server.answer(self, body=True)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"

    def answer(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        with self.lock:
            self.hits[h.path] += 1
            self.agents.add(h.headers.get("User-Agent", ""))
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            self._answer(h, body=body)
        finally:
            with self.lock:
                self.active -= 1

    def _answer(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = h.path
        if path == "/busy" and self.hits[path] <= 2:
            return self.send(h, 503, b"busy", body=body)
        if path == "/hang":
            time.sleep(1.5)
        if path.startswith("/chain/"):
            h.send_response(302)
            h.send_header("Location", f"/chain/{int(path.rsplit('/', 1)[1]) + 1}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        if path == "/gzipped/":
            data = gzip.compress(LISTING)
            h.send_response(200)
            h.send_header("Content-Type", "text/html; charset=utf-8")
            h.send_header("Content-Encoding", "gzip")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if body:
                h.wfile.write(data)
            return None
        if path.startswith("/files/"):
            time.sleep(0.02)
        return self.send(h, 200, b"0123456789", body=body)

    def send(self, h: BaseHTTPRequestHandler, status: int, data: bytes, *, body: bool) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)


@pytest.fixture
def server() -> Iterator[_Server]:
    found = _Server()
    thread = threading.Thread(target=found.http.serve_forever, daemon=True)
    thread.start()
    yield found
    found.http.shutdown()
    found.http.server_close()


def prober(**options: Any) -> Prober:
    return Prober(contact_url="https://contact.example/", backoff_seconds=0.01, **options)


def test_5xx_is_asked_again_and_then_answers(server):
    async def main() -> Any:
        async with prober(retries=2) as p:
            return await p.probe(server.url + "/busy")

    probe = run(main())
    assert probe.status == 200 and probe.size_bytes == 10 and probe.error is None
    assert server.hits["/busy"] == 3


def test_user_agent_names_us_and_the_contact(server):
    async def main() -> Any:
        async with prober(retries=0) as p:
            return await p.fetch_text(server.url + "/agent", max_bytes=100)

    run(main())
    (agent,) = server.agents
    assert agent.startswith("Priorizer/") and agent.endswith("(+https://contact.example/)")


def test_endless_redirects_lead_nowhere(server):
    async def main() -> Any:
        async with prober(retries=0, max_redirects=5) as p:
            return await p.probe(server.url + "/chain/0")

    probe = run(main())
    assert probe.is_redirect_trap and probe.is_gone and "more than 5 redirects" in probe.error
    assert server.hits["/chain/5"] == 1 and "/chain/7" not in server.hits


def test_a_silent_host_times_out_as_an_error(server):
    async def main() -> Any:
        async with prober(retries=0, timeout_seconds=0.3) as p:
            return await p.probe(server.url + "/hang")

    probe = run(main())
    assert probe.status is None and probe.error and not probe.is_gone


def test_a_refused_connection_is_an_error_after_its_retries():
    async def main() -> Any:
        async with prober(retries=1) as p:
            return await p.probe("http://127.0.0.1:1/file.nc")

    probe = run(main())
    assert probe.status is None and "Connect" in (probe.error or "")


def test_a_compressed_listing_is_read_as_text(server):
    async def main() -> Any:
        async with prober(retries=0) as p:
            return await p.fetch_text(server.url + "/gzipped/", max_bytes=10_000)

    found, text = run(main())
    assert found.is_ok and found.is_html and text == LISTING.decode()


def test_one_host_never_sees_more_than_its_limit(server):
    async def main() -> Any:
        async with prober(retries=0, concurrency=16, host_concurrency=2) as p:
            return await asyncio.gather(*(p.probe(f"{server.url}/files/{i}") for i in range(40)))

    probes = run(main())
    assert all(p.size_bytes == 10 for p in probes)
    assert server.most == 2
