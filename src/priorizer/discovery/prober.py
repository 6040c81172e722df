"""The prober: what a URL answers, asked politely (async httpx).

A `HEAD` first; a ranged `GET bytes=0-0` when `HEAD` is refused (405, 501, 403, 400) or says
nothing of the size. Redirects are followed by hand, each hop under its own host's limit, up to
`max_redirects`. Transport errors, 429 and 5xx are retried with exponential backoff. Concurrency
is bounded overall and per host (host and port): a portal never sees more than
`host_concurrency` requests from us at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from priorizer.discovery.pools import HostPools, host_key

GONE_STATUSES = (404, 410)
_HEAD_REFUSED = (400, 403, 405, 501)
_RETRIED_STATUSES = (429, 500, 502, 503, 504)
_RANGE = re.compile(r"bytes\s+\d+-\d+/(\d+)", re.I)
HTML_TYPES = ("text/html", "application/xhtml+xml")
SHORT_BODY_BYTES = 64 * 1024
IDLE_HOSTS_PER_SLOT = 4  # hosts whose connections are kept, per request allowed at once
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


class _Retry(Exception):
    """A status worth asking again for (429, 5xx)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


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
        # Requests at once are bounded by the semaphores; idle connections are kept for the
        # hosts seen last, so a host's next URL reuses one rather than connecting again.
        self._pools = HostPools(
            per_host=host_concurrency, idle_hosts=IDLE_HOSTS_PER_SLOT * concurrency
        )
        self._client = httpx.AsyncClient(
            headers={"User-Agent": user_agent(contact_url)},
            timeout=httpx.Timeout(timeout_seconds),
            transport=self._pools,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Prober:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._client.aclose()

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Held while one request to the URL's host runs: per host, then overall."""
        key = host_key(url)
        host = self._hosts.setdefault(key, asyncio.Semaphore(self.host_concurrency))
        self._pools.hold(key)  # waiting counts too: its pool is kept for it
        try:
            async with host, self._overall:
                yield
        finally:
            await self._pools.release(key)

    async def probe(self, url: str) -> Probe:
        try:
            response, final_url = await self._follow("HEAD", url)
            found = _read(url, final_url, response)
            if response.status_code in _HEAD_REFUSED or _says_no_size(found):
                response, final_url = await self._follow("GET", url, ranged=True)
                found = _read(url, final_url, response)
            return found
        except httpx.TooManyRedirects as error:
            return Probe(url, error=str(error), is_redirect_trap=True)
        except (httpx.HTTPError, _Retry) as error:
            return Probe(url, error=f"{type(error).__name__}: {error}".rstrip(": "))

    async def fetch_text(self, url: str, *, max_bytes: int) -> tuple[Probe, str | None]:
        """A page's text (a listing, robots.txt), at most `max_bytes` of it."""
        try:
            response, final_url = await self._follow("GET", url, max_bytes=max_bytes)
        except (httpx.HTTPError, _Retry) as error:
            return Probe(url, error=f"{type(error).__name__}: {error}"), None
        found = _read(url, final_url, response)
        if not found.is_ok:
            return found, None
        return found, response.content[:max_bytes].decode(response.encoding or "utf-8", "replace")

    async def _follow(
        self, method: str, url: str, *, ranged: bool = False, max_bytes: int = 0
    ) -> tuple[httpx.Response, str]:
        seen = {url}
        for _hop in range(self.max_redirects + 1):
            response = await self._request(method, url, ranged=ranged, max_bytes=max_bytes)
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                return response, url
            url = urljoin(url, location)
            if url in seen:
                raise httpx.TooManyRedirects(f"redirect loop at {url}")
            seen.add(url)
        raise httpx.TooManyRedirects(f"more than {self.max_redirects} redirects")

    async def _request(
        self, method: str, url: str, *, ranged: bool, max_bytes: int
    ) -> httpx.Response:
        headers = {"Range": "bytes=0-0"} if ranged else {}
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((httpx.TransportError, _Retry)),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_exponential(multiplier=self._backoff, max=30),
            reraise=True,
        ):
            with attempt:
                async with self.slot(url):
                    request = self._client.build_request(method, url, headers=headers)
                    response = await self._client.send(request, stream=True)
                    try:
                        if max_bytes:
                            await _read_some(response, max_bytes)
                        elif _is_short(response):
                            # Read to its end, so the connection goes back to the pool (a
                            # response closed unread closes its connection).
                            await response.aread()
                    finally:
                        await response.aclose()
                if response.status_code in _RETRIED_STATUSES:
                    raise _Retry(response)
        return response


async def _read_some(response: httpx.Response, max_bytes: int) -> None:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= max_bytes:
            break
    response._content = bytes(body)  # what `.content` gives, cut at max_bytes


def _is_short(response: httpx.Response) -> bool:
    """A body worth reading to keep the connection: none (HEAD), a ranged byte, a redirect's
    or an error's page; never a whole file."""
    if response.request.method == "HEAD" or response.status_code == 206:
        return True
    length = response.headers.get("content-length", "")
    return response.status_code != 200 and length.isdigit() and int(length) <= SHORT_BODY_BYTES


def _says_no_size(found: Probe) -> bool:
    """A `HEAD` that answers success without a usable length, for what is not a page."""
    return found.is_ok and not found.is_html and not found.size_bytes


def _read(url: str, final_url: str, response: httpx.Response) -> Probe:
    headers = response.headers
    size: int | None = None
    if response.status_code == 206 and (match := _RANGE.search(headers.get("content-range", ""))):
        size = int(match.group(1))
    elif response.status_code == 200 and headers.get("content-length", "").isdigit():
        size = int(headers["content-length"])
    # 206 is the ranged GET's success: the file is there.
    return Probe(
        url,
        final_url=final_url,
        status=200 if response.status_code == 206 else response.status_code,
        content_type=headers.get("content-type"),
        size_bytes=size,
        last_modified=headers.get("last-modified"),
        etag=headers.get("etag"),
    )
