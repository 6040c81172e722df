"""Catalog use cases: load assets, set priorities, read the catalog."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from priorizer.catalog import bulk, discovered, repo, stats
from priorizer.catalog.models import ASSET_ACTIVE, ASSET_WITHDRAWN, Asset, url_key
from priorizer.catalog.schemas import AssetDiscovery, ChildRead, ProbeRead
from priorizer.errors import NotFound
from priorizer.queue.policy import QueuePolicy, effective_size_mb, rank

# Not an asset state: the assets of datasets a full harvest no longer found upstream.
REMOVED_UPSTREAM = "removed_upstream"

CHILDREN_SHOWN = 1000


@dataclass(frozen=True, slots=True)
class NewAsset:
    id: str
    url: str
    name: str
    size_mb: float | None
    priority: int
    dataset_id: str | None = None
    format: str | None = None
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class UpsertReport:
    created: int = 0
    updated: int = 0


@dataclass(slots=True)
class PriorityReport:
    updated: int = 0
    unchanged: int = 0
    unknown_ids: list[str] = field(default_factory=list)


def upsert_assets(
    session: Session, *, items: Sequence[NewAsset], queue: QueuePolicy, now: datetime
) -> UpsertReport:
    """Add assets or update them in place by id; copies and leases are kept."""
    ids = [item.id for item in items]
    known = bulk.existing_ids(session, ids=ids)
    rows = [_row(item, queue=queue, now=now) for item in sorted(items, key=lambda i: i.id)]
    bulk.upsert(session, rows=rows, queue=queue)
    return UpsertReport(created=len(set(ids) - known), updated=len(known))


def _row(item: NewAsset, *, queue: QueuePolicy, now: datetime) -> dict[str, Any]:
    budget = effective_size_mb(item.size_mb, queue.unknown_size_mb)
    return {
        "id": item.id,
        "url": item.url,
        "name": item.name,
        "size_mb": item.size_mb,
        "format": item.format,
        "dataset_id": item.dataset_id,
        "base_priority": item.priority,
        "priority": item.priority,
        "manual_priority": item.priority,  # given by the file: the scoring policy leaves it
        "url_key": url_key(item.url),
        "state": ASSET_ACTIVE,
        "extra": item.extra or None,
        "created_at": now,
        "updated_at": now,
        "copies": 0,
        "leases": 0,
        "budget_mb": budget,
        "rank": rank(item.priority, 0, True, queue, budget_mb=budget),
    }


def update_priorities(
    session: Session, *, updates: Sequence[tuple[str, int]], queue: QueuePolicy, now: datetime
) -> PriorityReport:
    """Set base priorities (the seed's /update-ckan). Callers validate the whole batch first."""
    report = PriorityReport()
    known = bulk.existing_ids(session, ids=[asset_id for asset_id, _ in updates])
    # Rows in id order, like every multi-row write: two transactions never deadlock.
    for asset_id, priority in sorted(dict(updates).items()):
        if asset_id not in known:
            report.unknown_ids.append(asset_id)
        elif repo.set_priority(session, asset_id=asset_id, priority=priority, queue=queue, now=now):
            report.updated += 1
        else:
            report.unchanged += 1
    return report


@dataclass(slots=True)
class StateReport:
    changed: int = 0
    unknown_ids: list[str] = field(default_factory=list)


def set_states(
    session: Session,
    *,
    asset_ids: Sequence[str],
    withdraw: bool,
    queue: QueuePolicy,
    now: datetime,
) -> StateReport:
    """Withdraw assets from the catalog, or reinstate them (active again, failures forgotten)."""
    report = StateReport()
    state = ASSET_WITHDRAWN if withdraw else ASSET_ACTIVE
    for asset_id in sorted(set(asset_ids)):
        if repo.set_state(session, asset_id=asset_id, state=state, queue=queue, now=now):
            report.changed += 1
        else:
            report.unknown_ids.append(asset_id)
    return report


def discovery_of(session: Session, *, asset_id: str, parent_id: str | None) -> AssetDiscovery:
    """An asset's probe record, the listing it was found in, and its children."""
    probe = discovered.probe_of(session, asset_id=asset_id)
    parent = repo.get(session, asset_id=parent_id) if parent_id else None
    children = discovered.children_of(session, parent_id=asset_id, limit=CHILDREN_SHOWN)
    return AssetDiscovery(
        probe=ProbeRead.model_validate(probe) if probe else None,
        parent=ChildRead.model_validate(parent) if parent else None,
        children=[ChildRead.model_validate(child) for child in children],
        children_total=discovered.count_children(session, parent_id=asset_id)
        if len(children) == CHILDREN_SHOWN
        else len(children),
    )


def get_asset(session: Session, *, asset_id: str) -> Asset:
    asset = repo.get(session, asset_id=asset_id)
    if asset is None:
        raise NotFound(f"no asset {asset_id!r}")
    return asset


def list_assets(
    session: Session,
    *,
    after: str | None = None,
    limit: int = 100,
    priority: int | None = None,
    state: str | None = None,
    copies: int | None = None,
) -> Sequence[Asset]:
    """A page of assets by id; `state` may also be `removed_upstream`: the assets of datasets
    removed upstream, whatever their own state."""
    removed = state == REMOVED_UPSTREAM
    return repo.list_page(
        session,
        after=after,
        limit=limit,
        priority=priority,
        state=None if removed else state,
        copies=copies,
        removed_upstream=removed,
    )


def removed_without_copy(
    session: Session, *, dataset_ids: Sequence[str] = (), limit: int = 100
) -> tuple[list[Any], int]:
    """The emergency of a rescue: assets of datasets removed upstream that no node holds yet
    (of `dataset_ids`, or all), highest priority first, and their number."""
    return stats.removed_without_copy(session, dataset_ids=dataset_ids, limit=limit)


def iterate_assets(session: Session) -> Iterator[Asset]:
    return repo.iterate(session)


def catalog_progress(session: Session, *, replication_target: int) -> list[dict[str, Any]]:
    """How far the rescue got, per base priority and state (see `stats.progress`)."""
    return stats.progress(session, replication_target=replication_target)


def catalog_stats(session: Session, *, replication_target: int) -> dict[str, Any]:
    figures = stats.stats(session, replication_target=replication_target)
    figures["datasets"] = stats.count_datasets(session)
    return figures


def failing_assets(session: Session, *, limit: int) -> tuple[Sequence[Asset], int]:
    """Assets nodes failed to download, most failed first (up to `limit`), and their number."""
    return stats.failing(session, limit=limit)


def conflicting_assets(session: Session, *, limit: int) -> Sequence[Asset]:
    """Assets whose copies disagree on their checksum (up to `limit`)."""
    return stats.conflicting(session, limit=limit)


def count_assets(session: Session) -> int:
    return stats.count(session)


def scoring_rows(
    session: Session,
    *,
    after: str | None = None,
    dataset_ids: Sequence[str] = (),
    asset_ids: Sequence[str] = (),
) -> list[Any]:
    """Assets with their dataset's fields, for scoring (see `repo.scoring_rows`)."""
    return repo.scoring_rows(session, after=after, dataset_ids=dataset_ids, asset_ids=asset_ids)


def set_base_priorities(
    session: Session, *, priorities: dict[str, int], queue: QueuePolicy, now: datetime
) -> None:
    """Set the policy's priority of assets that have no manual one."""
    repo.set_base_priorities(session, priorities=priorities, queue=queue, now=now)


def assets_by_url_keys(
    session: Session, *, keys: Sequence[str]
) -> dict[str, tuple[str, float | None]]:
    """(id, size) of the asset of each URL key known."""
    return bulk.by_url_keys(session, keys=keys)


def upsert_harvested_assets(
    session: Session, *, rows: Sequence[dict[str, Any]], queue: QueuePolicy
) -> None:
    """Add harvested assets or update them, keeping manual priorities and reported sizes."""
    bulk.upsert_harvested(session, rows=rows, queue=queue)


def upsert_datasets(session: Session, *, rows: Sequence[dict[str, Any]]) -> None:
    bulk.upsert_datasets(session, rows=rows)


def ensure_datasets(session: Session, *, ids: Sequence[str]) -> None:
    """Record the datasets that imported assets name, so they count (a harvest's keep theirs)."""
    bulk.ensure_datasets(session, ids=sorted(set(ids)))


def removed_dataset_ids(session: Session, *, ids: Sequence[str]) -> list[str]:
    return bulk.removed_dataset_ids(session, ids=ids)


def mark_unlisted_removed(
    session: Session, *, source: str, listed_since: datetime, now: datetime
) -> list[str]:
    """Datasets of `source` no listing met since `listed_since`: marked removed upstream."""
    return bulk.mark_unlisted_removed(session, source=source, listed_since=listed_since, now=now)


def refresh_statistics(session: Session) -> None:
    """Fresh planner statistics after large writes (PostgreSQL; nothing on SQLite)."""
    bulk.refresh_statistics(session)
