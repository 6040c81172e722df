"""The catalog's figures: counts and distributions, the rescue's progress per priority,
and the assets in trouble (failing, conflicting, removed upstream without a copy)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    func,
    select,
    text,
)
from sqlalchemy.orm import Session

from priorizer.catalog.models import (
    ASSET_UNREACHABLE,
    ASSET_WITHDRAWN,
    CONFLICTING_SQL,
    FAILING_SQL,
    Asset,
    Dataset,
)
from priorizer.catalog.repo import (
    assets,
    datasets,
)


def removed_without_copy(
    session: Session, *, dataset_ids: Sequence[str] = (), limit: int
) -> tuple[list[Any], int]:
    """Assets of datasets removed upstream (of `dataset_ids`, or all) with no copy yet, highest
    priority first (up to `limit`), with their dataset's title and when it was removed; and
    how many there are in all."""
    a, d = assets.c, datasets.c
    where = [a.copies == 0, d.removed_at.is_not(None)]
    if dataset_ids:
        where.append(d.id.in_(list(dataset_ids)))
    joined = assets.join(datasets, d.id == a.dataset_id)
    rows = session.execute(
        select(
            a.id,
            a.name,
            a.url,
            a.priority,
            a.size_mb,
            d.id.label("dataset_id"),
            d.title,
            d.organization,
            d.removed_at,
        )
        .select_from(joined)
        .where(*where)
        .order_by(a.priority.desc(), a.id)
        .limit(limit)
    ).all()
    total = session.execute(select(func.count()).select_from(joined).where(*where)).scalar_one()
    return list(rows), int(total)


def _progress_columns(replication_target: int) -> dict[str, Any]:
    """What `progress` adds up per group: each of these sums over sub-groups."""
    a = assets.c
    counted = a.copies - a.disputed_copies  # copies that agree (`allocation.evidence`)
    with_copy, at_target = counted > 0, counted >= replication_target
    return {
        "assets": func.count(),
        "priority_score": func.sum(a.priority),
        "copies": func.sum(a.copies),
        "with_copy": func.count().filter(with_copy),
        "at_target": func.count().filter(at_target),
        "conflicting": func.count().filter(a.conflicting_copies),
        "disputed": func.count().filter(a.disputed_copies > 0),
        "unknown_size": func.count().filter(a.size_mb.is_(None)),
        "megabytes": func.coalesce(func.sum(a.size_mb), 0.0),
        "megabytes_with_copy": func.coalesce(func.sum(a.size_mb).filter(with_copy), 0.0),
        "megabytes_at_target": func.coalesce(func.sum(a.size_mb).filter(at_target), 0.0),
    }


def _progress_figures(rows: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """`progress` rows from (base priority, state) groups, in its order."""
    groups: dict[tuple[int, str], dict[str, Any]] = {}
    for row in rows:
        figures = groups.setdefault((row.base_priority, row.state), dict.fromkeys(names, 0))
        for name in names:
            figures[name] += row._mapping[name] or 0
    return [
        {"priority": priority, "state": state}
        | {
            name: float(value) if name.startswith("megabytes") else int(value)
            for name, value in figures.items()
        }
        for (priority, state), figures in sorted(
            groups.items(), key=lambda item: (-item[0][0], item[0][1])
        )
    ]


# The figures the catalog's totals are made of (`_progress_columns`, and disputed copies),
# and their names there.
_DISPUTED_COPIES = func.sum(assets.c.disputed_copies)
_TOTALS = {
    "assets": "assets",
    "total_priority_score": "priority_score",
    "copies": "copies",
    "assets_with_a_copy": "with_copy",
    "assets_at_target": "at_target",
    "assets_with_conflicting_copies": "conflicting",
    "disputed_copies": "disputed_copies",
    "assets_with_disputed_copies": "disputed",
}


def _catalog_totals(totals: Any, *, states: dict[str, int]) -> dict[str, int]:
    """`stats` from the summed figures (`_TOTALS`) and the assets in each state."""
    return {name: int(totals[column] or 0) for name, column in _TOTALS.items()} | {
        "unreachable_assets": states.get(ASSET_UNREACHABLE, 0),
        "withdrawn_assets": states.get(ASSET_WITHDRAWN, 0),
    }


def progress(session: Session, *, replication_target: int) -> list[dict[str, Any]]:
    """Per base priority and state: assets, copies, and how far the rescue got, in assets and
    in known megabytes. One pass, but a sorting one: about a second at a million assets on
    SQLite, so maintenance takes it once per cycle (`summary`) for the dashboard and metrics."""
    a, columns = assets.c, _progress_columns(replication_target)
    query = select(
        a.base_priority, a.state, *(c.label(name) for name, c in columns.items())
    ).group_by(a.base_priority, a.state)
    return _progress_figures(session.execute(query), list(columns))


def summary(session: Session, *, replication_target: int) -> dict[str, Any]:
    """What a maintenance cycle records, in one pass over the catalog instead of five: the
    totals of `stats`, `progress`, and how many assets have each priority, copy count and
    state. Grouped by all four at once, then added up here."""
    a, columns = assets.c, _progress_columns(replication_target)
    query = select(
        a.base_priority,
        a.state,
        a.priority,
        a.copies.label("copy_count"),
        _DISPUTED_COPIES.label("disputed_copies"),
        *(c.label(name) for name, c in columns.items()),
    ).group_by(a.base_priority, a.state, a.priority, a.copies)
    rows = session.execute(query).all()

    def by(key: str) -> dict[str, int]:
        counts: dict[Any, int] = {}
        for row in rows:
            counts[row._mapping[key]] = counts.get(row._mapping[key], 0) + row.assets
        return {str(value): counts[value] for value in sorted(counts)}

    states = by("state")
    totals = {name: sum(row._mapping[name] or 0 for row in rows) for name in _TOTALS.values()}
    return {
        "catalog": _catalog_totals(totals, states=states),
        "progress": _progress_figures(rows, list(columns)),
        "priority_distribution": by("priority"),
        "copies_distribution": by("copy_count"),
        "states": states,
    }


def stats(session: Session, *, replication_target: int) -> dict[str, Any]:
    """The catalog's totals: one pass with no sorting, cheaper than `progress`."""
    a = assets.c
    columns = _progress_columns(replication_target) | {"disputed_copies": _DISPUTED_COPIES}
    query = select(
        *(columns[column].label(column) for column in _TOTALS.values()),
        func.count().filter(a.state == ASSET_UNREACHABLE).label(ASSET_UNREACHABLE),
        func.count().filter(a.state == ASSET_WITHDRAWN).label(ASSET_WITHDRAWN),
    )
    row = session.execute(query).one()._mapping
    states = {state: int(row[state]) for state in (ASSET_UNREACHABLE, ASSET_WITHDRAWN)}
    return _catalog_totals(row, states=states)


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(assets)).scalar_one()


def failing(session: Session, *, limit: int) -> tuple[Sequence[Asset], int]:
    """Assets some node failed since their last reinstatement, most failed first; and how
    many there are."""
    query = (
        select(Asset)
        .where(text(FAILING_SQL))  # as the partial index says it, so SQLite uses it
        .order_by(Asset.failed_nodes.desc(), Asset.id)
        .limit(limit)
    )
    total = select(func.count()).select_from(assets).where(text(FAILING_SQL))
    return session.execute(query).scalars().all(), session.execute(total).scalar_one()


def conflicting(session: Session, *, limit: int) -> Sequence[Asset]:
    """Assets whose copies were reported with different checksums, by id."""
    query = select(Asset).where(text(CONFLICTING_SQL)).order_by(Asset.id).limit(limit)
    return session.execute(query).scalars().all()


def count_datasets(session: Session) -> int:
    return session.execute(select(func.count()).select_from(Dataset)).scalar_one()
