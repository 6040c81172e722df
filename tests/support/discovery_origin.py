"""A local origin for discovery tests: directory listings written as Apache, nginx and Python's
http.server write them, a nested folder, a landing page, servers that refuse or dodge HEAD,
redirect chains and loops, 404 and 410, a slow path, robots.txt; and an FTP server (pyftpdlib).

It counts concurrent requests per Host header, so a test can check the prober's per-host limit.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# ruff: noqa: E501

APACHE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html>
 <head>
  <title>Index of {path}</title>
 </head>
 <body>
<h1>Index of {path}</h1>
  <table>
   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
   <tr><th colspan="5"><hr></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
{rows}
   <tr><th colspan="5"><hr></th></tr>
</table>
<address>Apache/2.4.57 (Debian) Server at origin Port 80</address>
</body></html>
"""
APACHE_ROW = '<tr><td valign="top"><img src="/icons/{icon}" alt="[{alt}]"></td><td><a href="{href}">{name}</a></td><td align="right">2024-05-01 10:00  </td><td align="right">{size}</td><td>&nbsp;</td></tr>'
NGINX = """<html>
<head><title>Index of {path}</title></head>
<body>
<h1>Index of {path}</h1><hr><pre><a href="../">../</a>
{rows}</pre><hr></body>
</html>
"""
NGINX_ROW = '<a href="{href}">{name}</a>{pad}01-May-2024 10:00 {size:>19}\n'
PYTHON = """<!DOCTYPE HTML>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Directory listing for {path}</title>
</head>
<body>
<h1>Directory listing for {path}</h1>
<hr>
<ul>
{rows}
</ul>
<hr>
</body>
</html>
"""
LANDING = """<html><head><title>Sea surface temperature</title></head><body>
<nav><a href="/">Home</a> <a href="#content">Skip</a> <a href="../">Up</a>
<a href="mailto:data@example.org">Contact</a></nav>
<h1 id="content">Sea surface temperature, monthly</h1>
<p>Get <a href="/files/sst.nc">the data</a> (also <a href="/files/sst.nc#v2">here</a>),
<a href="/files/about.html">about it</a>, or <a href="https://mirror.example.com/sst.nc">a mirror</a>.</p>
</body></html>
"""
ROBOTS = "User-agent: *\nDisallow: /apache/private/\n"

# The real files: path -> size. Every one is served with its size and Range support.
FILES = {
    "/apache/a.csv": 1_234,
    "/apache/b.nc": 2_000_000,
    "/apache/sub/c.txt": 77,
    "/apache/sub/deeper/d.bin": 4_096,
    "/nginx/x.bin": 50_000,
    "/py/p.dat": 3_333,
    "/files/sst.nc": 123_456,
    "/nohead/f.bin": 9_999,
    "/nolength/g.bin": 8_888,
    "/redirect/target.bin": 7_777,
    "/slow/s.bin": 555,
    "/apache/private/secret.bin": 42,
}
PAGES = {"/files/about.html"}


def listing(style: str, path: str, entries: list[tuple[str, int | None]]) -> str:
    if style == "apache":
        rows = "\n".join(
            APACHE_ROW.format(
                icon="folder.gif" if size is None else "unknown.gif",
                alt="DIR" if size is None else "   ",
                href=name,
                name=name,
                size="  - " if size is None else size,
            )
            for name, size in entries
        )
        return APACHE.format(path=path, rows=rows)
    if style == "nginx":
        rows = "".join(
            NGINX_ROW.format(href=n, name=n, pad=" " * (51 - len(n)), size="-" if s is None else s)
            for n, s in entries
        )
        return NGINX.format(path=path, rows=rows)
    rows = "\n".join(f'<li><a href="{name}">{name}</a></li>' for name, _size in entries)
    return PYTHON.format(path=path, rows=rows)


class Origin:
    """The HTTP origin, on 127.0.0.1 and a port of its own."""

    def __init__(self, host: str = "127.0.0.1", delay_seconds: float = 0.0) -> None:
        self.files = dict(FILES)
        self.listings: dict[str, tuple[str, list[str]]] = {
            "/apache/": ("apache", ["a.csv", "b.nc", "sub/", "gone.csv", "private/"]),
            "/apache/private/": ("apache", ["secret.bin"]),
            "/apache/sub/": ("apache", ["c.txt", "deeper/"]),
            "/apache/sub/deeper/": ("apache", ["d.bin"]),
            "/nginx/": ("nginx", ["x.bin", "../elsewhere/"]),
            "/py/": ("python", ["p.dat", "private-link/"]),
        }
        self.delay_seconds = delay_seconds
        self.active: dict[str, int] = defaultdict(int)
        self.most: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, str, str]] = []  # (method, path, user agent)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Origin:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                origin.count(self, lambda: origin.answer(self, body=False))

            def do_GET(self) -> None:
                origin.count(self, lambda: origin.answer(self, body=True))

        return Handler

    def count(self, handler: BaseHTTPRequestHandler, answer: Callable[[], None]) -> None:
        host = handler.headers.get("Host", "")
        with self._lock:
            self.active[host] += 1
            self.most[host] = max(self.most[host], self.active[host])
            self.requests.append(
                (handler.command, handler.path, handler.headers.get("User-Agent", ""))
            )
        try:
            if self.delay_seconds or handler.path.startswith("/slow/"):
                time.sleep(self.delay_seconds or 0.3)
            answer()
        finally:
            with self._lock:
                self.active[host] -= 1

    def answer(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        if path == "/robots.txt":
            return self.send(h, 200, ROBOTS.encode(), "text/plain", body=body)
        if path in ("/dead404", "/apache/gone.csv"):
            return self.send(h, 404, b"not found", "text/plain", body=body)
        if path == "/dead410":
            return self.send(h, 410, b"gone", "text/plain", body=body)
        if path.startswith("/redirect/") and path != "/redirect/target.bin":
            hop = int(path.rsplit("/", 1)[-1])
            target = "/redirect/target.bin" if hop >= 3 else f"/redirect/{hop + 1}"
            return self.redirect(h, target)
        if path in ("/loop/a", "/loop/b"):
            return self.redirect(h, "/loop/b" if path == "/loop/a" else "/loop/a")
        if path == "/landing.html" or path in PAGES:
            return self.send(h, 200, LANDING.encode(), "text/html; charset=utf-8", body=body)
        if path in self.listings:
            style, names = self.listings[path]
            entries = [(n, None if n.endswith("/") else self.files.get(path + n)) for n in names]
            return self.send(h, 200, listing(style, path, entries).encode(), "text/html", body=body)
        if path + "/" in self.listings:
            return self.redirect(h, path + "/")
        if path in self.files:
            return self.file(h, path, body=body)
        return self.send(h, 404, b"not found", "text/plain", body=body)

    def file(self, h: BaseHTTPRequestHandler, path: str, *, body: bool) -> None:
        size = self.files[path]
        if path.startswith("/nohead/") and not body:
            return self.send(h, 405, b"", "text/plain", body=False)
        ranged = h.headers.get("Range") == "bytes=0-0"
        h.send_response(206 if ranged else 200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Last-Modified", "Wed, 01 May 2024 10:00:00 GMT")
        h.send_header("ETag", f'"{path}-{size}"')
        h.send_header("Accept-Ranges", "bytes")
        if ranged:
            h.send_header("Content-Range", f"bytes 0-0/{size}")
            h.send_header("Content-Length", "1")
        elif path.startswith("/nolength/") and not body:
            pass  # a HEAD that says nothing of the size
        else:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        if body:
            h.wfile.write(b"x" * (1 if ranged else size))

    def send(
        self, h: BaseHTTPRequestHandler, status: int, data: bytes, kind: str, *, body: bool
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)

    def redirect(self, h: BaseHTTPRequestHandler, target: str) -> None:
        h.send_response(302)
        h.send_header("Location", target)
        h.send_header("Content-Length", "0")
        h.end_headers()


class FtpOrigin:
    """pyftpdlib on loopback, anonymous read-only, serving `root`."""

    def __init__(self, root: Path) -> None:
        with warnings.catch_warnings():  # pyftpdlib uses asyncore on Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            from pyftpdlib.authorizers import DummyAuthorizer
            from pyftpdlib.handlers import FTPHandler
            from pyftpdlib.servers import ThreadedFTPServer

        authorizer = DummyAuthorizer()
        authorizer.add_anonymous(str(root))
        handler = type("Handler", (FTPHandler,), {"authorizer": authorizer, "banner": "test"})
        self.server = ThreadedFTPServer(("127.0.0.1", 0), handler)
        self.url = f"ftp://127.0.0.1:{self.server.address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FtpOrigin:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.close_all()
