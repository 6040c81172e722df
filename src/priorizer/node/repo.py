"""Node queries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from priorizer.db import DriverStatement, dialect_insert, driver_time, upsert_insert
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
    return statement.on_conflict_do_update(index_elements=[nodes.c.id], set_=changes)


# On the allocation hot path: run on the driver's cursor (see `DriverStatement`).
_SEEN = {
    with_space: DriverStatement(functools.partial(_upsert, with_space=with_space))
    for with_space in (False, True)
}


def record_seen(
    session: Session, *, node_id: str, free_space_mb: float | None, now: datetime
) -> None:
    """Create or refresh the node. On PostgreSQL this also locks its row until commit, which
    serialises that node's concurrent requests (its budget is read and spent by one at a time)."""
    parameters = {"node_id": node_id, "now": driver_time(session, now)}
    if free_space_mb is not None:
        parameters["free_space_mb"] = free_space_mb
    _SEEN[free_space_mb is not None].execute(session, parameters)


def get(session: Session, *, node_id: str) -> Node | None:
    return session.get(Node, node_id)


def list_page(session: Session, *, after: str | None, limit: int) -> Sequence[Node]:
    query = select(Node).order_by(Node.id).limit(limit)
    if after is not None:
        query = query.where(Node.id > after)
    return session.execute(query).scalars().all()


def ensure(session: Session, *, node_ids: Sequence[str], now: datetime) -> None:
    """Create the nodes that do not exist yet (imports), leaving the others untouched."""
    statement = dialect_insert(session, nodes).on_conflict_do_nothing()
    for start in range(0, len(node_ids), 1000):
        chunk = node_ids[start : start + 1000]
        rows = [{"id": i, "first_seen_at": now, "last_seen_at": now} for i in chunk]
        session.execute(statement, rows)


def count(session: Session) -> int:
    return session.execute(select(func.count()).select_from(nodes)).scalar_one()
