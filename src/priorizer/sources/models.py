"""Watched sources: what to harvest, how often, and how its last harvests went."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime

CKAN = "ckan"
DCAT = "dcat"
KINDS = (CKAN, DCAT)


class WatchedSource(Base):
    """A source the scheduler harvests when due (`next_run_at`).

    `leased_by` / `lease_until` say which server process is harvesting it now: a process takes
    a due source with one conditional UPDATE, so of several sharing the database exactly one
    harvests it per period; a lease past `lease_until` (its process died) may be taken over.
    """

    __tablename__ = "watched_sources"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The harvest's source key (`harvest.service.Source.key`): one watch per source.
    key: Mapped[str] = mapped_column(Text, unique=True)
    url: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    organization: Mapped[str | None] = mapped_column(String(500))
    query: Mapped[str | None] = mapped_column(Text)
    every_seconds: Mapped[float] = mapped_column(Float)
    # A full run (which notices removals) at least this often; incremental runs between.
    full_every_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_run_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    leased_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_run_id: Mapped[int | None] = mapped_column(BigInteger)
    last_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_full_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_state: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # Harvests failed in a row: each doubles the wait before the next try (back-off).
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    datasets: Mapped[int | None] = mapped_column(Integer)  # its datasets in the catalog
    removed_upstream: Mapped[int | None] = mapped_column(Integer)  # of them, vanished upstream
