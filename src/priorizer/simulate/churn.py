"""What vanishing nodes cost top data, and how long until the fleet makes it good again.

When nodes vanish, the top assets (priority 8 and up) they held are *hit*: each needs its
copies back (up to the replication target). The server learns of the loss only once those
nodes have been unseen for NODE_LOST_DAYS; the time series shows the hit assets still short
meanwhile, and the campaign has recovered when none is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from priorizer.simulate.fleet import Node


@dataclass(slots=True)
class ChurnWatch:
    top_ids: frozenset[str]
    target: int
    need: dict[str, int] = field(default_factory=dict)  # hit asset -> copies it must get back
    vanished_at: float | None = None
    server_knew_at: float | None = None
    recovered_at: float | None = None

    def vanished(self, nodes: Iterable[Node], copies: Mapping[str, int], *, now: float) -> None:
        """Nodes just vanished (`copies` no longer counts theirs): their top assets are hit."""
        lost = Counter(a for node in nodes for a in node.held if a in self.top_ids)
        for asset_id, n in lost.items():
            before = copies.get(asset_id, 0) + n
            self.need[asset_id] = max(self.need.get(asset_id, 0), min(before, self.target))
        if self.vanished_at is None:
            self.vanished_at = now

    def marked_lost(self, *, now: float) -> None:
        if self.vanished_at is not None and self.server_knew_at is None:
            self.server_knew_at = now

    def short(self, copies: Mapping[str, int]) -> int:
        """Hit assets still short of the copies they had."""
        return sum(copies.get(asset_id, 0) < n for asset_id, n in self.need.items())

    def observe(self, copies: Mapping[str, int], *, now: float) -> int:
        short = self.short(copies)
        if self.need and short == 0 and self.recovered_at is None:
            self.recovered_at = now
        return short

    def summary(self, series: Sequence[dict[str, Any]], counts: Mapping[str, int]) -> Any:
        """Before the loss, right after it, at the end, and the delays that matter."""
        at = self.vanished_at
        if at is None or not series:
            return None
        before = [p for p in series if p["hours"] < at / 3600]
        after = [p for p in series if p["hours"] >= at / 3600]
        return {
            "vanished_nodes": counts.get("nodes_vanished", 0),
            "returned_nodes": counts.get("nodes_returned", 0),
            "vanished_at_hours": at / 3600,
            "top_assets_hit": len(self.need),
            "before": before[-1] if before else None,
            "after": after[0] if after else None,
            "end": series[-1],
            "server_knew_after_hours": _since(self.server_knew_at, at),
            "recovered_after_hours": _since(self.recovered_at, at),
        }


def _since(moment: float | None, start: float) -> float | None:
    return None if moment is None else (moment - start) / 3600
