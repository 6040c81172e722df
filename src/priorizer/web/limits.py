"""How much: node endpoints are rate limited per client address, then per node (429 with
Retry-After): the node its token proves, or in open mode the node named from that address."""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from priorizer.errors import TooManyRequests

# How often the counts of windows gone by are dropped from memory.
HOUSEKEEPING_SECONDS = 5.0


class _TidyMemoryStorage(MemoryStorage):
    """`limits`' in-memory storage, its housekeeping run at most every HOUSEKEEPING_SECONDS.

    The library drops old entries 100 times a second, walking every key it holds: with one key
    per node, a fleet of thousands costs the server a tenth of its CPU or more for memory it
    could free a few seconds later. The limits themselves do not depend on it (each check
    reads the time of the entries it counts), only how soon memory is given back."""

    def __init__(self) -> None:
        self._tidied_at = 0.0
        self.housekeeping_runs = 0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:  # the library's private hook
        now = time.monotonic()
        if now - self._tidied_at < HOUSEKEEPING_SECONDS:
            return
        self._tidied_at = now
        self.housekeeping_runs += 1
        super()._MemoryStorage__schedule_expiry()  # type: ignore[misc]


class RateLimits:
    """Moving-window limits on node endpoints, per client address and per node, in this
    process's memory (each instance limits its own share)."""

    def __init__(self, *, per_node: str, per_address: str) -> None:
        self.storage = _TidyMemoryStorage()
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_node: RateLimitItem = parse(per_node)
        self.per_address: RateLimitItem = parse(per_address)

    def check(self, *, address: str | None, node_key: str | None) -> None:
        """The address's limit first: a call it refuses counts against no node."""
        for item, kind, key in (
            (self.per_address, "address", address),
            (self.per_node, "node", node_key),
        ):
            if key is not None and not self.limiter.hit(item, kind, key):
                reset = self.limiter.get_window_stats(item, kind, key).reset_time
                wait = max(1, math.ceil(reset - time.time()))
                raise TooManyRequests(
                    f"too many requests from this {kind} (limit {item}); retry in {wait} s",
                    retry_after=wait,
                )


def limit_node_call(request: Request, node_id: str | None, identity: str | None) -> None:
    """Count a node endpoint call against its client address, then its node: the node its
    token proves (NODE_AUTH), or in open mode the node named from that address, so calls from
    elsewhere naming a node cannot use up that node's allowance."""
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else None
    if identity is not None:
        node_key: str | None = identity
    else:
        node_key = None if node_id is None else f"{address} {node_id}"
    limits.check(address=address, node_key=node_key)
