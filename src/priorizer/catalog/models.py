"""Assets (downloadable files) and datasets (the CKAN packages that group them)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime, partial_index
from priorizer.queue.states import (  # noqa: F401  (the catalog's names for them)
    ASSET_ACTIVE,
    ASSET_EXPANDED,
    ASSET_GONE,
    ASSET_STATES,
    ASSET_UNREACHABLE,
    ASSET_WITHDRAWN,
)

IN_QUEUE_SQL = "rank IS NOT NULL"
# Assets in trouble, for the dashboard's lists: few, and found without a scan.
FAILING_SQL = "failed_nodes > 0"
CONFLICTING_SQL = "conflicting_copies"
URL_KEY_NOT_ID_SQL = "url_key <> id"
REMOVED_SQL = "removed_at IS NOT NULL"


def url_key(url: str) -> str:
    """The identity of a URL: 40 hex digits of its SHA-256 (a URL may be longer than an index
    entry can be). One asset per URL: harvests find assets by it."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:40]


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    title: Mapped[str | None] = mapped_column(Text)
    organization: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    modified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str | None] = mapped_column(Text)
    # Views the portal reports (CKAN's tracking_summary.total), where it does.
    views: Mapped[int | None] = mapped_column(Integer)
    # Set when a full listing of its source no longer had it: kept, with its assets, whose
    # copies may now be the only ones. Cleared if it comes back.
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    harvested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_datasets_source", "source"),
        # Datasets removed upstream: few, found without a scan (removal alerts, filters).
        partial_index("ix_datasets_removed", "id", where=REMOVED_SQL),
    )


class Asset(Base):
    """One downloadable file.

    Besides what describes the file, an asset carries the allocation queue's denormalised state:
    `copies` (completed copies, `disputed_copies` of them disputed) and `leases` (open leases),
    counted by allocation's statements (`allocation.claims`, `allocation.lifecycle`);
    `budget_mb` (what the asset counts for in a node's budget) and `rank` (its place in the queue,
    NULL when it is not to be handed out), set with them and wherever a priority, state or size
    changes, always by the queue core's rule (`queue.sql.rank_of`, `queue.policy.asset_rank`).
    `copies` counts copies on nodes that are not lost (see `maintenance`).
    """

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    size_mb: Mapped[float | None] = mapped_column(Float)
    format: Mapped[str | None] = mapped_column(String(100))
    dataset_id: Mapped[str | None] = mapped_column(String(200), index=True)
    base_priority: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    # A priority a person gave (POST /update-ckan, or an imported file's): it wins over the
    # scoring policy. NULL: the policy sets `base_priority` (see `scoring`).
    manual_priority: Mapped[int | None] = mapped_column(Integer)
    # Identifies the URL (`url_key`): one asset per URL, whatever its id. A harvested asset's
    # id is its URL key, so only the others need an index to be found by URL.
    url_key: Mapped[str | None] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20), server_default=ASSET_ACTIVE)
    # Fields of imported rows we do not model, kept so an export gives back what was imported.
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    # What nodes reported on completing it (allocation.lifecycle): the settled checksum (the
    # one most copies report; ties: the first reported), and whether copies disagree.
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    # The exact size in bytes, from the first copy reported with one (`size_mb` may be rounded).
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    conflicting_copies: Mapped[bool] = mapped_column(Boolean, server_default="0")
    # The size came from nodes' copies (the catalog had none): it follows the settled copies,
    # and no copy is disputed for contradicting it.
    is_size_reported: Mapped[bool] = mapped_column(Boolean, server_default="0")
    # Distinct nodes that reported a failure since the last reinstatement.
    failed_nodes: Mapped[int] = mapped_column(Integer, server_default="0")
    failures_reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Why it is unreachable (failures, or copies that keep disagreeing); NULL when active.
    state_reason: Mapped[str | None] = mapped_column(Text)

    # Some node reported a magnet link with its copy: a gone asset can still be handed out.
    has_magnet_link: Mapped[bool] = mapped_column(Boolean, server_default="0")
    # Discovery: the listing or landing page it was found in, and its last probe (asset_probes).
    parent_id: Mapped[str | None] = mapped_column(String(200))
    probed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    copies: Mapped[int] = mapped_column(Integer, server_default="0")
    # Of `copies`, those disputed (`allocation.evidence.settle`): they do not count as holders.
    disputed_copies: Mapped[int] = mapped_column(Integer, server_default="0")
    leases: Mapped[int] = mapped_column(Integer, server_default="0")
    budget_mb: Mapped[float] = mapped_column(Float)
    rank: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # The allocation queue: walk one rank level at a time, in budget order (FILL_ORDER).
        partial_index("ix_assets_queue", "rank", "budget_mb", "id", where=IN_QUEUE_SQL),
        partial_index("ix_assets_url_key", "url_key", where=URL_KEY_NOT_ID_SQL),
        partial_index("ix_assets_failing", "failed_nodes", "id", where=FAILING_SQL),
        partial_index("ix_assets_conflicting", "id", where=CONFLICTING_SQL),
        Index("ix_assets_priority", "priority"),
        Index("ix_assets_state", "state"),
        Index("ix_assets_parent", "parent_id"),
        Index("ix_assets_probed_at", "probed_at"),
    )


class AssetProbe(Base):
    """What the last probe of an asset's URL answered (discovery)."""

    __tablename__ = "asset_probes"

    asset_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    final_url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    last_modified: Mapped[str | None] = mapped_column(String(100))
    etag: Mapped[str | None] = mapped_column(String(300))
    # file, listing, landing, gone or error: what discovery made of it.
    kind: Mapped[str] = mapped_column(String(20))
    # Why a probe failed (timeouts, too many redirects…); NULL when the origin answered.
    error: Mapped[str | None] = mapped_column(Text)
    children: Mapped[int] = mapped_column(Integer, server_default="0")
    probed_at: Mapped[datetime] = mapped_column(UtcDateTime)
