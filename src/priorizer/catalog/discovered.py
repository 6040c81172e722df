"""Discovery's writes to the catalog: probe records, sizes, the states gone and expanded, and
child assets of expanded listings. Called inside the caller's write transaction.

Sizes: a probed size replaces the catalog's (and the assumed size of an unknown one) at once,
in `size_mb` and `budget_mb`, unless nodes reported one (`size_bytes`, `is_size_reported`),
which wins over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from priorizer.catalog import bulk, repo
from priorizer.catalog.models import (
    ASSET_ACTIVE,
    ASSET_EXPANDED,
    ASSET_GONE,
    Asset,
    AssetProbe,
    url_key,
)
from priorizer.db import dialect_insert
from priorizer.queue.policy import (
    QueuePolicy,
    counted_holders,
    effective_size_mb,
    may_hand_out,
    rank,
)

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


def due(session: Session, *, limit: int, before: datetime) -> list[tuple[str, str]]:
    """(id, url) of assets to probe: never probed first, then those probed before `before`."""
    a = Asset.__table__.c
    fresh = select(a.id, a.url).where(a.probed_at.is_(None), a.state.in_(PROBED_STATES))
    found = [(r.id, r.url) for r in session.execute(fresh.order_by(a.id).limit(limit))]
    if len(found) < limit:
        stale = (
            select(a.id, a.url)
            .where(a.probed_at < before, a.state.in_(PROBED_STATES))
            .order_by(a.probed_at)
            .limit(limit - len(found))
        )
        found += [(r.id, r.url) for r in session.execute(stale)]
    return found


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
        budget = queue.unknown_size_mb if row["size_mb"] is None else row["size_mb"]
        holders = counted_holders(row["copies"], row["disputed_copies"], row["leases"])
        is_open = may_hand_out(row["state"], row["has_magnet_link"])
        changes[item.asset_id] = {
            "b_id": item.asset_id,
            "b_state": row["state"],
            "b_size_mb": row["size_mb"],
            "b_budget_mb": budget,
            "b_rank": rank(row["priority"], holders, is_open, queue, budget_mb=budget),
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


def add_children(
    session: Session,
    *,
    parent_id: str,
    children: Sequence[Found],
    names: Sequence[str],
    formats: Sequence[str | None],
    is_complete: bool,
    queue: QueuePolicy,
    now: datetime,
) -> tuple[int, int]:
    """Children of an expanded parent: new ones added (its dataset and priority), known ones
    refreshed (a gone one is back), and, when the listing was seen whole, those no longer in it
    marked gone (never deleted). Answers (added, vanished)."""
    parent = repo.get(session, asset_id=parent_id)
    if parent is None:
        return 0, 0
    keys = [url_key(child.url) for child in children]
    known = bulk.by_url_keys(session, keys=keys)
    seen: set[str] = set()
    added = 0
    probes: list[tuple[str, Found, int]] = []
    for child, key, name, file_format in zip(children, keys, names, formats, strict=True):
        asset_id = known[key][0] if key in known else key
        if asset_id in seen:
            continue
        seen.add(asset_id)
        asset = repo.get(session, asset_id=asset_id, for_update=True)
        if asset is None:
            asset = _new_child(parent, child, key, name, file_format, now)
            session.add(asset)
            added += 1
        elif asset.state == ASSET_GONE:
            asset.state = ASSET_ACTIVE
        if asset.parent_id is None and asset.id != parent.id:
            asset.parent_id = parent.id
        asset.probed_at = now
        _take_size(asset, child.size_bytes)
        _rerank(asset, queue)
        probes.append((asset_id, child, 0))
    session.flush()
    store_probes(session, probes, now)
    vanished = _mark_vanished(session, parent.id, seen, queue, now) if is_complete else 0
    return added, vanished


def _new_child(
    parent: Asset, child: Found, key: str, name: str, file_format: str | None, now: datetime
) -> Asset:
    return Asset(
        id=key,
        url=child.url,
        name=name,
        size_mb=None,
        format=file_format,
        dataset_id=parent.dataset_id,
        base_priority=parent.base_priority,
        priority=parent.priority,
        manual_priority=parent.manual_priority,
        url_key=key,
        state=ASSET_ACTIVE,
        created_at=now,
        updated_at=now,
        copies=0,
        disputed_copies=0,
        leases=0,
        budget_mb=0.0,
        has_magnet_link=False,
        is_size_reported=False,
        parent_id=parent.id,
    )


def _mark_vanished(
    session: Session, parent_id: str, seen: set[str], queue: QueuePolicy, now: datetime
) -> int:
    query = select(Asset).where(
        Asset.parent_id == parent_id, Asset.state.in_((ASSET_ACTIVE, ASSET_EXPANDED))
    )
    vanished = 0
    for asset in session.execute(query.with_for_update()).scalars():
        if asset.id not in seen:
            asset.state, asset.updated_at = ASSET_GONE, now
            _rerank(asset, queue)
            vanished += 1
    return vanished


def _take_size(asset: Asset, size_bytes: int | None) -> None:
    if size_bytes is not None and asset.size_bytes is None and not asset.is_size_reported:
        asset.size_mb = max(size_bytes, 1) / MIB


def _rerank(asset: Asset, queue: QueuePolicy) -> None:
    asset.budget_mb = queue.unknown_size_mb if asset.size_mb is None else asset.size_mb
    holders = counted_holders(asset.copies, asset.disputed_copies, asset.leases)
    is_open = may_hand_out(asset.state, asset.has_magnet_link)
    asset.rank = rank(asset.priority, holders, is_open, queue, budget_mb=asset.budget_mb)


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


def gone_with_copies(session: Session, *, limit: int) -> Sequence[Asset]:
    """The most precious assets: their origin is gone, and only nodes' copies remain."""
    query = (
        select(Asset)
        .where(Asset.state == ASSET_GONE, Asset.copies > 0)
        .order_by(Asset.priority.desc(), Asset.id)
        .limit(limit)
    )
    return session.execute(query).scalars().all()


def children_of(session: Session, *, parent_id: str, limit: int) -> Sequence[Asset]:
    query = select(Asset).where(Asset.parent_id == parent_id).order_by(Asset.id).limit(limit)
    return session.execute(query).scalars().all()


def probe_of(session: Session, *, asset_id: str) -> AssetProbe | None:
    return session.get(AssetProbe, asset_id)


@dataclass(frozen=True, slots=True)
class ListedUrl:
    """One record of an imported URL list (`discovery.imports`)."""

    url: str
    name: str
    size_bytes: int | None
    format: str | None
    priority: int | None
    dataset_id: str | None
    extra: dict[str, Any] | None


def add_listed_urls(
    session: Session,
    *,
    items: Sequence[ListedUrl],
    default_priority: int,
    queue: QueuePolicy,
    now: datetime,
) -> tuple[int, int]:
    """Add the URLs the catalog does not hold yet (those it holds keep what they have): their
    id is their URL key, as a harvest's. Answers (added, already known)."""
    unique = {url_key(item.url): item for item in items}
    known = bulk.by_url_keys(session, keys=list(unique))
    rows = []
    for key, item in sorted(unique.items()):
        if key in known:
            continue
        size_mb = None if item.size_bytes is None else max(item.size_bytes, 1) / MIB
        budget = effective_size_mb(size_mb, queue.unknown_size_mb)
        priority = item.priority or default_priority
        rows.append(
            {
                "id": key,
                "url": item.url,
                "name": item.name,
                "size_mb": size_mb,
                "format": item.format,
                "dataset_id": item.dataset_id,
                "base_priority": priority,
                "priority": priority,
                "manual_priority": item.priority,  # given by the list: the policy leaves it
                "url_key": key,
                "state": ASSET_ACTIVE,
                "extra": item.extra,
                "created_at": now,
                "updated_at": now,
                "copies": 0,
                "leases": 0,
                "budget_mb": budget,
                "rank": rank(priority, 0, True, queue, budget_mb=budget),
            }
        )
    bulk.upsert(session, rows=rows, queue=queue)
    bulk.ensure_datasets(session, ids=sorted({i.dataset_id for i in items if i.dataset_id}))
    return len(rows), len(unique) - len(rows)


def figures(session: Session) -> dict[str, Any]:
    """Discovery at a glance: probed, unprobed, gone, expanded, and the bytes of the sizes
    known (probed, listed or reported), in one pass; and the gone assets that have copies."""
    a = Asset.__table__.c
    query = select(
        func.count().filter(a.probed_at.is_not(None)),
        func.count().filter(a.probed_at.is_(None)),
        func.count().filter(a.state == ASSET_GONE),
        func.count().filter(a.state == ASSET_EXPANDED),
        func.coalesce(func.sum(a.size_mb).filter(a.state != ASSET_EXPANDED), 0.0),
    )
    probed, unprobed, gone, expanded, known_mb = session.execute(query).one()
    precious = gone_with_copies(session, limit=20)
    return {
        "probed": int(probed),
        "unprobed": int(unprobed),
        "gone": int(gone),
        "expanded": int(expanded),
        "bytes_known": round(float(known_mb) * MIB),
        "gone_with_copies": [
            {"id": g.id, "url": g.url, "copies": g.copies, "priority": g.priority} for g in precious
        ],
    }


def count_children(session: Session, *, parent_id: str) -> int:
    query = select(func.count()).select_from(Asset).where(Asset.parent_id == parent_id)
    return session.execute(query).scalar_one()
