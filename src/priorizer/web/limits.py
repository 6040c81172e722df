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


class RateLimits:
    """Moving-window limits on node endpoints, per client address and per node, in this
    process's memory (each instance limits its own share)."""

    def __init__(self, *, per_node: str, per_address: str) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
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
