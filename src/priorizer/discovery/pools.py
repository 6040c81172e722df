"""Connections for probing: one small pool per host, behind one httpx transport.

httpx's single pool looks through all its connections for every request it places, so with
connections to a thousand hosts each request costs thousands of checks. A pool per host holds
at most PROBE_HOST_CONCURRENCY connections: a request looks through two. Pools of hosts with no
request running are closed once more than `idle_hosts` of them are kept, oldest first.
"""

from __future__ import annotations

import ssl
from collections import OrderedDict, defaultdict
from urllib.parse import urlsplit

import certifi
import httpx


def host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"


class HostPools(httpx.AsyncBaseTransport):
    def __init__(self, *, per_host: int, idle_hosts: int) -> None:
        self._per_host = per_host
        self._idle_hosts = idle_hosts
        # One TLS context for all (building one loads the CA bundle: milliseconds each).
        self._tls = ssl.create_default_context(cafile=certifi.where())
        self._pools: OrderedDict[str, httpx.AsyncHTTPTransport] = OrderedDict()
        self._busy: dict[str, int] = defaultdict(int)

    def hold(self, key: str) -> None:
        """A request to this host is about to run: its pool stays open."""
        self._busy[key] += 1

    async def release(self, key: str) -> None:
        self._busy[key] -= 1
        if self._busy[key] <= 0:
            del self._busy[key]
        if len(self._pools) > self._idle_hosts:
            idle = [k for k in self._pools if k not in self._busy][: len(self._pools) // 4]
            closing = [self._pools.pop(k) for k in idle]  # before any await: no one else takes them
            for pool in closing:
                await pool.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = host_key(str(request.url))
        pool = self._pools.get(key)
        if pool is None:
            limits = httpx.Limits(
                max_connections=self._per_host, max_keepalive_connections=self._per_host
            )
            pool = self._pools[key] = httpx.AsyncHTTPTransport(verify=self._tls, limits=limits)
        self._pools.move_to_end(key)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        while self._pools:
            await self._pools.popitem()[1].aclose()
