"""The simulated rescue nodes and what they do, in simulated seconds (no I/O: the engine passes
their requests to a driver).

A node asks with its free disk space while it has room and its last answer was not empty. It
downloads what it gets in `completion_delay_hours`, then reports each asset done (or failed, for
the share of nodes that fail assets). A node that got nothing asks again only when that may
change: after a maintenance cycle, after one of its own downloads, or after any failure returns
an asset it has room for. Vanishing nodes stop answering, their copies out of reach; those that
come back bring their copies with them.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from priorizer.queue.policy import MB_PER_GB
from priorizer.simulate.scenario import FleetSpec


@dataclass(frozen=True, slots=True)
class Grant:
    """One asset an allocation answer leased: its size on disk (the reserved size if unknown)."""

    asset_id: str
    size_mb: float


@dataclass(frozen=True, slots=True)
class Download:
    asset_id: str
    size_mb: float
    due: float
    fails: bool
    expires: float  # when the server expires its lease


@dataclass(slots=True)
class Node:
    id: str
    capacity_mb: float
    failure_rate: float = 0.0
    vanish_at: float | None = None
    return_at: float | None = None
    held: dict[str, float] = field(default_factory=dict)
    used_mb: float = 0.0
    downloads: list[Download] = field(default_factory=list)
    asleep: bool = False
    gone: bool = False
    last_contact: float | None = None  # None: it never called the server

    @property
    def free_space_gb(self) -> float:
        """What the node reports: its disk's free space (open leases are the server's to count)."""
        return (self.capacity_mb - self.used_mb) / MB_PER_GB

    @property
    def budget_mb(self) -> float:
        """What it could still be given: free space minus what its downloads will take."""
        return self.capacity_mb - self.used_mb - sum(d.size_mb for d in self.downloads)

    @property
    def wants_work(self) -> bool:
        return not self.gone and not self.asleep and self.budget_mb > 0


class Fleet:
    """The nodes of a scenario, drawn from its seed, and the live copies they hold."""

    def __init__(
        self, spec: FleetSpec, *, seed: int, lease_seconds: float, lost_seconds: float
    ) -> None:
        self.spec = spec
        self._draw = random.Random(f"{seed}:fleet")
        self._lease_seconds = lease_seconds
        self._lost_seconds = lost_seconds
        self.nodes = self._build(spec)
        self._by_id = {node.id: node for node in self.nodes}
        self.copies: Counter[str] = Counter()
        self.version = 0  # moves whenever `copies` changes
        # Moments a maintenance cycle has work: lost nodes, abandoned leases due, returns.
        self.cycles_at: set[float] = set()

    def _build(self, spec: FleetSpec) -> list[Node]:
        draw = self._draw
        nodes = [
            Node(f"sim-node-{n:05d}", draw.uniform(spec.min_free_gb, spec.max_free_gb) * MB_PER_GB)
            for n in range(spec.nodes)
        ]
        for node in draw.sample(nodes, round(spec.nodes * spec.failing_share)):
            node.failure_rate = spec.failure_rate
        vanishing = draw.sample(nodes, round(spec.nodes * spec.vanish_share))
        vanish_at = spec.vanish_at_hours * 3600
        for node in vanishing:
            node.vanish_at = vanish_at
        for node in vanishing[: round(len(vanishing) * spec.return_share)]:
            node.return_at = vanish_at + spec.return_after_days * 86_400
        return nodes

    @property
    def capacities_mb(self) -> list[float]:
        return [node.capacity_mb for node in self.nodes]

    # --- requests -------------------------------------------------------------------------

    def askers(self) -> list[Node]:
        """The nodes that ask this round, in a fresh (seeded) order."""
        nodes = [node for node in self.nodes if node.wants_work]
        self._draw.shuffle(nodes)
        return nodes

    def granted(self, node: Node, grants: Sequence[Grant], *, now: float) -> None:
        node.last_contact = now
        if not grants:
            node.asleep = True
            return
        due = now + self.spec.completion_delay_hours * 3600
        for grant in grants:
            fails = node.failure_rate > 0 and self._draw.random() < node.failure_rate
            download = Download(
                grant.asset_id, grant.size_mb, due, fails, now + self._lease_seconds
            )
            node.downloads.append(download)

    def due(self, now: float) -> Iterator[tuple[Node, list[Download]]]:
        """Each live node's downloads finished by `now`, taken off its list."""
        for node in self.nodes:
            if node.gone or not node.downloads or node.downloads[0].due > now:
                continue
            finished = [d for d in node.downloads if d.due <= now]
            node.downloads = [d for d in node.downloads if d.due > now]
            yield node, finished

    def settled(self, node: Node, finished: Sequence[Download], *, now: float) -> None:
        """The node reported these downloads: copies for those done, returns for the failed."""
        node.last_contact = now
        node.asleep = False  # fewer open leases: its lease cap may allow more
        for download in finished:
            if download.fails:
                continue
            node.held[download.asset_id] = download.size_mb
            node.used_mb += download.size_mb
            self.copies[download.asset_id] += 1
            self.version += 1
        returned = [d.size_mb for d in finished if d.fails]
        if returned:
            self.wake(room_mb=min(returned))

    def wake(self, *, room_mb: float = 0.0) -> None:
        """Nodes that got nothing ask again (those with room for `room_mb` at least)."""
        for node in self.nodes:
            if node.asleep and node.budget_mb >= room_mb:
                node.asleep = False

    # --- churn ----------------------------------------------------------------------------

    def events(self, now: float) -> list[tuple[str, Node]]:
        """Nodes vanishing or coming back by `now` (applied)."""
        happened: list[tuple[str, Node]] = []
        for node in self.nodes:
            if node.vanish_at is not None and node.vanish_at <= now and not node.gone:
                node.vanish_at = None
                self._vanish(node)
                happened.append(("vanished", node))
            elif node.return_at is not None and node.return_at <= now and node.gone:
                node.return_at = None
                self._come_back(node, now)
                happened.append(("returned", node))
        return happened

    def _vanish(self, node: Node) -> None:
        node.gone = True
        self.copies.subtract(node.held.keys())
        self.copies = +self.copies  # drop the zeros
        self.version += 1
        # The server learns of it once the node has been unseen for NODE_LOST_DAYS, and gets
        # its open leases back as they expire.
        if node.last_contact is not None:
            self.cycles_at.add(node.last_contact + self._lost_seconds + 1)
        self.cycles_at.update(d.expires + 1 for d in node.downloads)
        node.downloads = []

    def _come_back(self, node: Node, now: float) -> None:
        node.gone, node.asleep = False, False
        self.copies.update(node.held.keys())
        self.version += 1
        # It says hello at once (see the engine); the next cycle counts its copies again.
        self.cycles_at.add(now + 1)

    def contacted(self, node_id: str, now: float) -> None:
        """The node called the server without asking for work."""
        self._by_id[node_id].last_contact = now

    def silent_since(self, moment: float) -> list[Node]:
        """Live nodes that have not called the server since `moment`."""
        return [
            node
            for node in self.nodes
            if not node.gone and node.last_contact is not None and node.last_contact < moment
        ]

    def cycle_due(self, now: float) -> bool:
        """Whether a maintenance cycle has work by `now` (the moments are then used up)."""
        due = {moment for moment in self.cycles_at if moment <= now}
        self.cycles_at -= due
        return bool(due)

    # --- time -----------------------------------------------------------------------------

    def next_change(self, now: float) -> float | None:
        """The next moment anything happens when no node asks: a download due, a node vanishing
        or coming back, a cycle with work; None if nothing ever will."""
        moments = [moment for moment in self.cycles_at if moment > now]
        for node in self.nodes:
            moments += [d.due for d in node.downloads if not node.gone]
            moments += [t for t in (node.vanish_at, node.return_at) if t is not None]
        later = [moment for moment in moments if moment > now]
        return min(later) if later else None

    @property
    def busy(self) -> bool:
        return any(node.wants_work for node in self.nodes)
