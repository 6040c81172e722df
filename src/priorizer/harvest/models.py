"""Harvest runs: each run's scope, where it got to, and what it found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime

RUNNING = "running"
INTERRUPTED = "interrupted"  # stopped by a crash, Ctrl-C or an error: the next run continues it
OK = "ok"
FAILED = "failed"  # could not go on (a portal that cannot be paged): not continued


class HarvestRun(Base):
    """One harvest of one source (a portal URL with an organization and a query).

    The cursor (`cursor_modified`, `cursor_skip`) moves with every page committed: a run that
    stops for any reason is continued from it by the next run of the same source.
    """

    __tablename__ = "harvest_runs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    source: Mapped[str] = mapped_column(Text, index=True)
    url: Mapped[str] = mapped_column(Text)
    organization: Mapped[str | None] = mapped_column(String(500))
    query: Mapped[str | None] = mapped_column(Text)
    # Datasets modified before this were not asked for (an incremental run).
    since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Where the listing got to: datasets modified at `cursor_modified` (in milliseconds, as
    # the portal's search index compares them), of which `cursor_skip` were taken already.
    cursor_modified: Mapped[str | None] = mapped_column(String(40))
    cursor_skip: Mapped[int] = mapped_column(Integer, server_default="0")
    # The latest modification seen: where the next incremental run starts.
    newest_modified: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expected: Mapped[int | None] = mapped_column(Integer)  # the portal's count, when asked
    pages: Mapped[int] = mapped_column(Integer, server_default="0")
    datasets: Mapped[int] = mapped_column(Integer, server_default="0")
    assets_created: Mapped[int] = mapped_column(Integer, server_default="0")
    assets_updated: Mapped[int] = mapped_column(Integer, server_default="0")
    shared_urls: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # resources not assets, by why
    removed: Mapped[int | None] = mapped_column(Integer)  # datasets found removed upstream
    returned: Mapped[int | None] = mapped_column(Integer)  # removed datasets listed again
    retries: Mapped[int] = mapped_column(Integer, server_default="0")
    seconds: Mapped[float] = mapped_column(Float, server_default="0")  # working time
    error: Mapped[str | None] = mapped_column(String(1000))
    # How the listing paged (`harvest.paging`): keyset, or offset when the portal ignored the
    # filter or the sort; and why.
    paging: Mapped[str | None] = mapped_column(String(20))
    paging_note: Mapped[str | None] = mapped_column(String(1000))
    # data.json distributions with only an accessURL: pages stored to discover what they hold.
    pages_to_discover: Mapped[int | None] = mapped_column(Integer)
