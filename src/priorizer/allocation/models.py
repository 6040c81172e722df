"""Allocations: an asset leased to a node, until it becomes a copy or is closed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime, partial_index

ALLOCATED = "allocated"
COMPLETED = "completed"
RELEASED = "released"
EXPIRED = "expired"
FAILED = "failed"
STATUSES = (ALLOCATED, COMPLETED, RELEASED, EXPIRED, FAILED)
# The note on leases the maintenance cycle closed because their asset left the catalog.
WITHDRAWN_NOTE = "asset withdrawn from the catalog"
# An asset "held" by a node: leased and not yet closed, or copied.
HOLDING = (ALLOCATED, COMPLETED)
# The same, as SQL: the exact text of the partial index's condition, which queries repeat so
# that SQLite's planner sees they may use that index.
HOLDING_SQL = "status IN ({})".format(", ".join(f"'{status}'" for status in HOLDING))
# Failed leases, the only ones with a reason code: a node is not given back what it failed
# lately (`allocation.picks.candidates`). Not "status = 'failed'": SQLite would then re-plan,
# at every call, each statement comparing `status` with a bound value (to check whether that
# index applies), which costs the hot path's statements more than they cost.
FAILED_SQL = "reason_code IS NOT NULL"
# Leases granted to unproven nodes in open mode (the few the per-address cap counts).
UNPROVEN_SQL = "unproven_address IS NOT NULL"


class Allocation(Base):
    __tablename__ = "allocations"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id"))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    status: Mapped[str] = mapped_column(String(20))
    # What the lease takes from the node's budget: the asset's size, or the assumed size.
    reserved_mb: Mapped[float] = mapped_column(Float)
    allocated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Why it closed (a node's failure reason, or what the server did).
    note: Mapped[str | None] = mapped_column(Text)
    # A failure's reason code (`allocation.evidence`): whose fault it was. NULL unless failed.
    reason_code: Mapped[str | None] = mapped_column(String(20))
    # What the node reported with its copy.
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    magnet_link: Mapped[str | None] = mapped_column(Text)
    reported_size_mb: Mapped[float | None] = mapped_column(Float)
    # Open mode: the client address that asked, when the node had no completed copy yet; such
    # leases are capped per address (`allocation.service.allocate`).
    unproven_address: Mapped[str | None] = mapped_column(String(64))
    # Why a copy is disputed (DISPUTE_SIZE, DISPUTE_CHECKSUM), or NULL when it agrees; a
    # disputed copy does not count toward the target (`allocation.evidence.settle`).
    dispute: Mapped[str | None] = mapped_column(String(20))

    __table_args__ = (
        # Rule 3 as a constraint: one open lease or copy of an asset per node, whatever races.
        # Node first: one request's new rows land together in the index.
        partial_index(
            "uq_allocations_holding", "node_id", "asset_id", where=HOLDING_SQL, unique=True
        ),
        # What a node failed, and when: one seek per candidate keeps those out of its picks.
        partial_index(
            "ix_allocations_failed", "node_id", "asset_id", "closed_at", where=FAILED_SQL
        ),
        partial_index(
            "ix_allocations_unproven_address",
            "unproven_address",
            "status",
            where=UNPROVEN_SQL,
        ),
        Index("ix_allocations_node_status", "node_id", "status"),
        Index("ix_allocations_status_expires", "status", "expires_at"),
        Index("ix_allocations_asset", "asset_id"),
    )
