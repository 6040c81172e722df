"""Assets (downloadable files) and datasets (the CKAN packages that group them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime, partial_index

ASSET_ACTIVE = "active"
IN_QUEUE_SQL = "rank IS NOT NULL"


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    title: Mapped[str | None] = mapped_column(Text)
    organization: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    modified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    source: Mapped[str | None] = mapped_column(Text)


class Asset(Base):
    """One downloadable file.

    Besides what describes the file, an asset carries the allocation queue's denormalised state,
    written only by `allocation.repo`: `copies` (completed copies), `leases` (open leases),
    `budget_mb` (what the asset counts for in a node's budget) and `rank` (its place in the queue,
    NULL when it is not to be handed out). See `allocation.policy` for the rules.
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
    state: Mapped[str] = mapped_column(String(20), server_default=ASSET_ACTIVE)
    # Fields of imported rows we do not model, kept so an export gives back what was imported.
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    copies: Mapped[int] = mapped_column(Integer, server_default="0")
    leases: Mapped[int] = mapped_column(Integer, server_default="0")
    budget_mb: Mapped[float] = mapped_column(Float)
    rank: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # The allocation queue: walk one rank level at a time, largest file that fits first.
        partial_index("ix_assets_queue", "rank", "budget_mb", "id", where=IN_QUEUE_SQL),
        # The smallest asset still in the queue: a request stops once nothing can fit.
        partial_index("ix_assets_open_budget", "budget_mb", where=IN_QUEUE_SQL),
        Index("ix_assets_priority", "priority"),
    )
