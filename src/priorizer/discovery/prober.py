"""The prober: what a URL answers, asked politely (aiohttp: its C parser costs less CPU per
request than httpx over anyio, which matters at a thousand URLs a second).

A `HEAD` first; a ranged `GET bytes=0-0` when `HEAD` is refused (405, 501, 403, 400) or says
nothing of the size. Redirects are followed by hand, each hop under its own host's limit, up to
`max_redirects`. Transport errors, 429 and 5xx are retried with exponential backoff. Concurrency
is bounded overall and per host (host and port): a portal never sees more than
`host_concurrency` requests from us at once. Each host has a connection pool of its own (an
aiohttp session), kept while the host is among the last seen.
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import certifi
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

GONE_STATUSES = (404, 410)
_HEAD_REFUSED = (400, 403, 405, 501)
_RETRIED_STATUSES = (429, 500, 502, 503, 504)
_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)", re.I)
HTML_TYPES = ("text/html", "application/xhtml+xml")
SHORT_BODY_BYTES = 64 * 1024
IDLE_HOSTS_PER_SLOT = 4  # hosts whose connections are kept, per request allowed at once
_REDIRECTS = (301, 302, 303, 307, 308)
# What a request failed of on the way (httpx's TransportError): asked again.
_TRANSPORT_ERRORS = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,  # an answer that is not HTTP
    TimeoutError,
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Probe:
    url: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    last_modified: str | None = None
    etag: str | None = None
    error: str | None = None
    # Redirects that loop or never end: the URL leads nowhere, as a 404 does.
    is_redirect_trap: bool = False

    @property
    def is_gone(self) -> bool:
        return self.status in GONE_STATUSES or self.is_redirect_trap

    @property
    def is_ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def is_html(self) -> bool:
        kind = (self.content_type or "").split(";")[0].strip().lower()
        return kind in HTML_TYPES


@dataclass(frozen=True, slots=True)
class Answer:
    """What a request answered: its status and headers, and the body read (if any)."""

    status: int
    headers: Mapping[str, str]
    content: bytes = b""
    charset: str | None = None


class TooManyRedirects(Exception):
    """Redirects that loop, or more of them than `max_redirects`."""


class _Retry(Exception):
    """A status worth asking again for (429, 5xx)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer


def user_agent(contact_url: str) -> str:
    try:
        ours = version("priorizer")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        ours = "0"
    return f"Priorizer/{ours} (+{contact_url})"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on uvloop when it is installed (it comes with uvicorn[standard]): its event
    loop costs the prober less CPU per request than asyncio's own."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn without [standard]
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"


def by_host(urls: list[str]) -> list[str]:
    """The URLs grouped by host (in their order otherwise): a host's URLs come one after the
    other, over the connections it just used."""
    return sorted(urls, key=host_key)


class Prober:
    def __init__(
        self,
        *,
        contact_url: str,
        concurrency: int = 64,
        host_concurrency: int = 2,
        timeout_seconds: float = 20.0,
        retries: int = 2,
        max_redirects: int = 10,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.host_concurrency = host_concurrency
        self.max_redirects = max_redirects
        self._retries = retries
        self._backoff = backoff_seconds
        self._overall = asyncio.Semaphore(concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._waiting: dict[str, int] = {}
        self._headers = {"User-Agent": user_agent(contact_url)}
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_seconds, sock_read=timeout_seconds
        )
        # One TLS context for all (building one loads the CA bundle: milliseconds each).
        self._tls = ssl.create_default_context(cafile=certifi.where())
        # A session (a connection pool) per host: idle ones are kept for the hosts seen last,
        # so a host's next URL reuses a connection rather than connecting again.
        self._sessions: OrderedDict[str, aiohttp.ClientSession] = OrderedDict()
        self._idle_hosts = IDLE_HOSTS_PER_SLOT * concurrency

    def _session(self, key: str) -> aiohttp.ClientSession:
        session = self._sessions.get(key)
        if session is None:  # made in the running loop: aiohttp binds it to that loop
            connector = aiohttp.TCPConnector(
                limit=self.host_concurrency, limit_per_host=self.host_concurrency, ssl=self._tls
            )
            session = self._sessions[key] = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout
            )
        self._sessions.move_to_end(key)
        return session

    async def _close_idle(self) -> None:
        """Sessions of hosts no request runs or waits for, oldest first, once more than
        `idle_hosts` are kept: open connections stay bounded (two per host kept)."""
        if len(self._sessions) <= self._idle_hosts:
            return
        idle = [k for k in self._sessions if k not in self._waiting][: len(self._sessions) // 4]
        closing = [self._sessions.pop(k) for k in idle]  # before any await: no one takes them
        for session in closing:
            await session.close()

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        while self._sessions:
            await self._sessions.popitem()[1].close()

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Held while one request to the URL's host runs: per host, then overall."""
        key = host_key(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = asyncio.Semaphore(self.host_concurrency)
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with host, self._overall:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:  # no one holds or waits for it: forgotten
                del self._waiting[key], self._hosts[key]
            await self._close_idle()

    async def probe(self, url: str) -> Probe:
        try:
            answer, final_url = await self._follow("HEAD", url)
            found = _read(url, final_url, answer)
            if answer.status in _HEAD_REFUSED or _says_no_size(found):
                answer, final_url = await self._follow("GET", url, ranged=True)
                found = _read(url, final_url, answer)
            return found
        except TooManyRedirects as error:
            return Probe(url, error=str(error), is_redirect_trap=True)
        except (aiohttp.ClientError, TimeoutError, _Retry) as error:
            return Probe(url, error=_error(error))

    async def fetch_text(self, url: str, *, max_bytes: int) -> tuple[Probe, str | None]:
        """A page's text (a listing, robots.txt), at most `max_bytes` of it."""
        try:
            answer, final_url = await self._follow("GET", url, max_bytes=max_bytes)
        except TooManyRedirects as error:
            return Probe(url, error=f"TooManyRedirects: {error}"), None
        except (aiohttp.ClientError, TimeoutError, _Retry) as error:
            return Probe(url, error=_error(error)), None
        found = _read(url, final_url, answer)
        if not found.is_ok:
            return found, None
        return found, answer.content[:max_bytes].decode(_codec(answer.charset), "replace")

    async def _follow(
        self, method: str, url: str, *, ranged: bool = False, max_bytes: int = 0
    ) -> tuple[Answer, str]:
        seen = {url}
        for _hop in range(self.max_redirects + 1):
            answer = await self._request(method, url, ranged=ranged, max_bytes=max_bytes)
            location = answer.headers.get("location")
            if answer.status not in _REDIRECTS or not location:
                return answer, url
            url = urljoin(url, location)
            if url in seen:
                raise TooManyRedirects(f"redirect loop at {url}")
            seen.add(url)
        raise TooManyRedirects(f"more than {self.max_redirects} redirects")

    async def _request(self, method: str, url: str, *, ranged: bool, max_bytes: int) -> Answer:
        headers = {"Range": "bytes=0-0"} if ranged else None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((*_TRANSPORT_ERRORS, _Retry)),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=30),
            reraise=True,
        ):
            with attempt:
                async with (
                    self.slot(url),
                    self._session(host_key(url)).request(
                        method, url, headers=headers, allow_redirects=False
                    ) as response,
                ):
                    content = b""
                    if max_bytes:
                        content = await _read_some(response, max_bytes)
                    elif _is_short(method, response):
                        # Read to its end, so the connection goes back to the pool (a
                        # response closed unread closes its connection).
                        content = await response.read()
                    answer = Answer(response.status, response.headers, content, response.charset)
                if answer.status in _RETRIED_STATUSES:
                    raise _Retry(answer)
        return answer


async def _read_some(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    body = bytearray()
    while len(body) < max_bytes:
        chunk = await response.content.read(max_bytes - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)  # at most max_bytes


def _is_short(method: str, response: aiohttp.ClientResponse) -> bool:
    """A body worth reading to keep the connection: none (HEAD), a ranged byte, a redirect's
    or an error's page; never a whole file."""
    if method == "HEAD" or response.status == 206:
        return True
    length = response.headers.get("content-length", "")
    return response.status != 200 and length.isdigit() and int(length) <= SHORT_BODY_BYTES


def _error(error: BaseException) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return "TimeoutError: no answer in time"
    return f"{type(error).__name__}: {error}".rstrip(": ")


def _codec(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


def _says_no_size(found: Probe) -> bool:
    """A `HEAD` that answers success without a usable length, for what is not a page."""
    return found.is_ok and not found.is_html and not found.size_bytes


def _read(url: str, final_url: str, answer: Answer) -> Probe:
    headers = answer.headers
    size: int | None = None
    if answer.status == 206 and (match := _RANGE.search(headers.get("content-range", ""))):
        size = int(match.group(1))
    elif answer.status == 200 and headers.get("content-length", "").isdigit():
        size = int(headers["content-length"])
    # 206 is the ranged GET's success: the file is there.
    return Probe(
        url,
        final_url=final_url,
        status=200 if answer.status == 206 else answer.status,
        content_type=headers.get("content-type"),
        size_bytes=size,
        last_modified=headers.get("last-modified"),
        etag=headers.get("etag"),
    )
