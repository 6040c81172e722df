"""Discovery's writes to the catalog: probe records (`probes`, re-exported here), sizes, the
states gone and expanded, and child assets of expanded listings. Called inside the caller's
write transaction.

Sizes: a probed size replaces the catalog's (and the assumed size of an unknown one) at once,
in `size_mb` and `budget_mb`, unless nodes reported one (`size_bytes`, `is_size_reported`),
which wins over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
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
from priorizer.catalog.probes import MIB, PROBED_STATES, Found, store_probes
from priorizer.queue.policy import (
    QueuePolicy,
    asset_rank,
    effective_size_mb,
    rank,
)


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
    asset.budget_mb = effective_size_mb(asset.size_mb, queue.unknown_size_mb)
    asset.rank = asset_rank(asset, queue)


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
