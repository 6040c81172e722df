"""Probe records, a batch at a time: what a probe run stores of each asset's probe, and what it
changes of the asset (its size, state and rank). Called inside the caller's write transaction;
`discovered` holds the rest of discovery's writes.

Sizes: a probed size replaces the catalog's (and the assumed size of an unknown one) at once,
in `size_mb` and `budget_mb`, unless nodes reported one (`size_bytes`, `is_size_reported`),
which wins over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from priorizer.catalog.models import (
    ASSET_ACTIVE,
    ASSET_EXPANDED,
    ASSET_GONE,
    Asset,
    AssetProbe,
)
from priorizer.db import dialect_insert
from priorizer.queue.policy import QueuePolicy, asset_rank, effective_size_mb

_assets = cast(Table, Asset.__table__)

MIB = 1024 * 1024
# States a probe may move an asset between; unreachable and withdrawn are people's business.
PROBED_STATES = (ASSET_ACTIVE, ASSET_GONE, ASSET_EXPANDED)
PROBE_FIELDS = (
    "final_url", "status", "content_type", "size_bytes", "last_modified", "etag", "kind", "error",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Found:
    """One URL's probe, as discovery stores it."""

    url: str
    kind: str
    final_url: str | None = None
    status: int | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    last_modified: str | None = None
    etag: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Probed:
    """One asset's probe, as a probe run records it."""

    asset_id: str
    found: Found
    children: int
    is_expanded: bool


def record_probe(
    session: Session,
    *,
    asset_id: str,
    found: Found,
    children: int,
    is_expanded: bool,
    queue: QueuePolicy,
    now: datetime,
) -> str | None:
    """Store one asset's probe and what it means for the asset; its state before, when the
    probe changed it (None otherwise, or when the asset is gone from the catalog)."""
    pending: list[tuple[str, Found, int]] = []
    [was] = record_probes(
        session,
        probed=[Probed(asset_id, found, children, is_expanded)],
        queue=queue,
        now=now,
        pending=pending,
    )
    store_probes(session, pending, now)
    return was


def record_probes(
    session: Session,
    *,
    probed: Sequence[Probed],
    queue: QueuePolicy,
    now: datetime,
    pending: list[tuple[str, Found, int]],
) -> list[str | None]:
    """`record_probe` for a batch, in a few statements: the assets' rows read (and locked) a
    chunk at a time in id order, their new size, state and rank computed here, and written by
    one executemany UPDATE. Each asset's state before, when its probe changed it (as
    `record_probe`), in the order given; the probe records are added to `pending`, for
    `store_probes` to write with others."""
    session.flush()  # ORM changes made before (add_children) are in the rows read here
    rows = _probed_rows(session, sorted({p.asset_id for p in probed}))
    changes: dict[str, dict[str, Any]] = {}
    was: list[str | None] = []
    for item in probed:
        row = rows.get(item.asset_id)
        if row is None:
            was.append(None)
            continue
        pending.append((item.asset_id, item.found, item.children))
        size_bytes = item.found.size_bytes
        if size_bytes is not None and row["size_bytes"] is None and not row["is_size_reported"]:
            row["size_mb"] = max(size_bytes, 1) / MIB
        before = row["state"]
        if before in PROBED_STATES:
            if item.found.kind == "gone":
                row["state"] = ASSET_GONE
            elif item.is_expanded:
                row["state"] = ASSET_EXPANDED
            elif item.found.status is not None and before == ASSET_GONE:
                row["state"] = ASSET_ACTIVE  # found back
        row["budget_mb"] = effective_size_mb(row["size_mb"], queue.unknown_size_mb)
        changes[item.asset_id] = {
            "b_id": item.asset_id,
            "b_state": row["state"],
            "b_size_mb": row["size_mb"],
            "b_budget_mb": row["budget_mb"],
            "b_rank": asset_rank(SimpleNamespace(**row), queue),
        }
        was.append(before if row["state"] != before else None)
    if changes:
        a = _assets.c
        statement = (
            update(_assets)
            .where(a.id == bindparam("b_id"))
            .values(
                probed_at=now,
                state=bindparam("b_state"),
                size_mb=bindparam("b_size_mb"),
                budget_mb=bindparam("b_budget_mb"),
                rank=bindparam("b_rank"),
            )
        )
        session.connection().execute(statement, list(changes.values()))
        session.expire_all()  # assets the session holds are read again when next used
    return was


_ROW_COLUMNS = (
    "id", "state", "size_mb", "size_bytes", "is_size_reported", "priority", "copies",
    "disputed_copies", "leases", "has_magnet_link",
)  # fmt: skip


def _probed_rows(session: Session, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What a probe needs of each asset, by id, locked (FOR UPDATE on PostgreSQL)."""
    a = _assets.c
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        query = (
            select(*(a[name] for name in _ROW_COLUMNS))
            .where(a.id.in_(ids[start : start + 500]))
            .order_by(a.id)
            .with_for_update()
        )
        found.update({row.id: dict(row._mapping) for row in session.execute(query)})
    return found


def store_probes(session: Session, rows: Sequence[tuple[str, Found, int]], now: datetime) -> None:
    if not rows:
        return
    # One row per asset (the last): PostgreSQL refuses to update a row twice in one statement.
    rows = list({asset_id: (asset_id, found, n) for asset_id, found, n in rows}.values())
    values: list[dict[str, Any]] = [
        {
            "asset_id": asset_id,
            **{name: getattr(found, name) for name in PROBE_FIELDS},
            "children": children,
            "probed_at": now,
        }
        for asset_id, found, children in rows
    ]
    for value in values:
        value["content_type"] = (value["content_type"] or "")[:200] or None
        value["etag"] = (value["etag"] or "")[:300] or None
        value["last_modified"] = (value["last_modified"] or "")[:100] or None
    statement = dialect_insert(session, AssetProbe.__table__)
    new = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["asset_id"],
        set_={name: getattr(new, name) for name in (*PROBE_FIELDS, "children", "probed_at")},
    )
    session.execute(statement, values)
