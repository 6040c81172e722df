"""Node queries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from priorizer.db import (
    DriverStatement,
    dialect_insert,
    driver_time,
    from_driver_time,
    upsert_insert,
)
from priorizer.node.models import Node

nodes = cast(Table, Node.__table__)


def _upsert(dialect: str, *, with_space: bool) -> Any:
    values: dict[str, Any] = {
        "id": bindparam("node_id"),
        "first_seen_at": bindparam("now"),
        "last_seen_at": bindparam("now"),
    }
    changes: dict[str, Any] = {"last_seen_at": bindparam("now")}
    if with_space:
        values["free_space_mb"] = changes["free_space_mb"] = bindparam("free_space_mb")
    statement = upsert_insert(dialect, nodes).values(values)
    statement = statement.on_conflict_do_update(index_elements=[nodes.c.id], set_=changes)
    return statement.returning(nodes.c.lease_cap, nodes.c.completions, nodes.c.last_failed_at)


# On the allocation hot path: run on the driver's cursor (see `DriverStatement`).
_SEEN = {
    with_space: DriverStatement(functools.partial(_upsert, with_space=with_space))
    for with_space in (False, True)
}


@dataclass(frozen=True, slots=True)
class Seen:
    """What a request needs to know of the node asking."""

    lease_cap: int | None  # None: the initial cap applies
    completions: int
    last_failed_at: datetime | None


def record_seen(
    session: Session, *, node_id: str, free_space_mb: float | None, now: datetime
) -> Seen:
    """Create or refresh the node; its standing. On PostgreSQL this also locks its row until
    commit, which serialises that node's concurrent requests (its budget is read and spent by
    one at a time)."""
    parameters = {"node_id": node_id, "now": driver_time(session, now)}
    if free_space_mb is not None:
        parameters["free_space_mb"] = free_space_mb
    [row] = _SEEN[free_space_mb is not None].rows(session, parameters)
    return Seen(row.lease_cap, row.completions, from_driver_time(row.last_failed_at))


def get(session: Session, *, node_id: str, for_update: bool = False) -> Node | None:
    return session.get(Node, node_id, with_for_update=for_update or None)


def newly_lost(session: Session, *, seen_before: datetime) -> list[str]:
    """Nodes not seen since `seen_before` and not marked lost yet."""
    query = select(nodes.c.id).where(nodes.c.last_seen_at < seen_before, nodes.c.lost_at.is_(None))
    return list(session.execute(query.order_by(nodes.c.id)).scalars())


def returned(session: Session) -> list[str]:
    """Nodes marked lost that have been seen since."""
    query = select(nodes.c.id).where(
        nodes.c.lost_at.is_not(None), nodes.c.last_seen_at >= nodes.c.lost_at
    )
    return list(session.execute(query.order_by(nodes.c.id)).scalars())


def mark_lost(session: Session, *, node_id: str, seen_before: datetime, now: datetime) -> bool:
    """Mark the node lost if it still was not seen since `seen_before`; whether it was."""
    statement = (
        update(nodes)
        .where(
            nodes.c.id == node_id,
            nodes.c.lost_at.is_(None),
            nodes.c.last_seen_at < seen_before,
        )
        .values(lost_at=now)
        .returning(nodes.c.id)
    )
    return session.execute(statement).first() is not None


def clear_lost(session: Session, *, node_id: str) -> None:
    session.execute(update(nodes).where(nodes.c.id == node_id).values(lost_at=None))


def totals(session: Session, *, active_since: datetime) -> dict[str, Any]:
    """Fleet-wide counters and space, for statistics snapshots."""
    query = select(
        func.count(),
        func.count().filter(nodes.c.last_seen_at >= active_since),
        func.count().filter(nodes.c.lost_at.is_not(None)),
        func.coalesce(func.sum(nodes.c.free_space_mb), 0.0),
        func.coalesce(func.sum(nodes.c.completions), 0),
        func.coalesce(func.sum(nodes.c.failures), 0),
        func.coalesce(func.sum(nodes.c.expirations), 0),
        func.coalesce(func.sum(nodes.c.releases), 0),
    )
    row = session.execute(query).one()
    names = (
        "nodes",
        "active_nodes",
        "lost_nodes",
        "free_space_mb",
        "completions",
        "failures",
        "expirations",
        "releases",
    )
    return {
        name: (float(v) if name == "free_space_mb" else int(v))
        for name, v in zip(names, row, strict=True)
    }


def list_page(session: Session, *, after: str | None, limit: int) -> Sequence[Node]:
    query = select(Node).order_by(Node.id).limit(limit)
    if after is not None:
        query = query.where(Node.id > after)
    return session.execute(query).scalars().all()


def recently_seen(session: Session, *, limit: int) -> Sequence[Node]:
    query = select(Node).order_by(Node.last_seen_at.desc(), Node.id).limit(limit)
    return session.execute(query).scalars().all()


def ensure(session: Session, *, node_ids: Sequence[str], now: datetime) -> None:
    """Create the nodes that do not exist yet (imports), leaving the others untouched."""
    statement = dialect_insert(session, nodes).on_conflict_do_nothing()
    for start in range(0, len(node_ids), 1000):
        chunk = node_ids[start : start + 1000]
        rows = [{"id": i, "first_seen_at": now, "last_seen_at": now} for i in chunk]
        session.execute(statement, rows)


def count(session: Session, *, lost: bool = False) -> int:
    query = select(func.count()).select_from(nodes)
    if lost:
        query = query.where(nodes.c.lost_at.is_not(None))
    return session.execute(query).scalar_one()


def set_token_hash(
    session: Session, *, node_id: str, token_hash: str | None, now: datetime
) -> None:
    session.execute(
        update(nodes)
        .where(nodes.c.id == node_id)
        .values(token_hash=token_hash, enrolled_at=now if token_hash else None)
    )


def by_token_hash(session: Session, *, token_hash: str) -> str | None:
    query = select(nodes.c.id).where(nodes.c.token_hash == token_hash)
    return session.execute(query).scalar_one_or_none()
