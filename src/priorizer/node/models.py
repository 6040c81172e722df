"""Rescue nodes, known by the id they send."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime


class Node(Base):
    """A rescuer and its standing: what it did with its leases, and how many it may hold open
    at once (`lease_cap`, see `node.standing`)."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    free_space_mb: Mapped[float | None] = mapped_column(Float)

    completions: Mapped[int] = mapped_column(Integer, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    expirations: Mapped[int] = mapped_column(Integer, server_default="0")
    releases: Mapped[int] = mapped_column(Integer, server_default="0")
    consecutive_successes: Mapped[int] = mapped_column(Integer, server_default="0")
    # NULL until the node's standing first changes: the configured initial cap applies.
    lease_cap: Mapped[int | None] = mapped_column(Integer)
    # Its latest failure report: a node with none lately skips the check for failed assets
    # when it asks for work (`allocation.picks.candidates`).
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set by maintenance when the node was not seen for NODE_LOST_DAYS: its copies stop counting.
    lost_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # SHA-256 of the node's token (`POST /nodes/enroll`); the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    enrolled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set by an admin's revocation: the node's token is refused, and it cannot enroll again
    # (not even with the enrollment secret) until an admin reinstates it.
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
