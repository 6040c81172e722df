"""Maintenance runs: one row per cycle, with what it did and the statistics it took."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime

RUNNING = "running"
OK = "ok"
FAILED = "failed"
# Left running by a process that stopped (killed, crashed) before it could finish it.
INTERRUPTED = "interrupted"


class MaintenanceRun(Base):
    __tablename__ = "maintenance_runs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The scheduled slot (time since the epoch divided by the interval); NULL for a run asked
    # for by hand. Unique: of several server processes, the first to claim a slot runs it.
    slot: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    runner: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(500))
    # What each step did (leases expired, copies freed, priorities redrawn, ...).
    steps: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The statistics snapshot taken at the end of the cycle.
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
