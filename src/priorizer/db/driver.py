"""Statements for the hot path: compiled once and run on the driver's cursor, and the
dialect's INSERT ... ON CONFLICT."""

from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


def upsert_insert(dialect_name: str, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in that dialect (SQLite or PostgreSQL)."""
    from sqlalchemy.dialects import postgresql, sqlite

    module: Any = postgresql if dialect_name == "postgresql" else sqlite
    return module.insert(table)


def dialect_insert(session: Session, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in the session's dialect."""
    return upsert_insert(session.get_bind().dialect.name, table)


class DriverStatement:
    """A statement run straight on the driver's cursor, for the allocation hot path.

    SQLAlchemy compiles it once per dialect (from `build(dialect_name)`); each call then costs
    what the driver costs — for an index seek on SQLite, SQLAlchemy's per-call work is several
    times the query itself. Parameters go in as the driver's types (see `driver_time`), rows
    come out as named tuples.
    """

    def __init__(self, build: Callable[[str], Any]) -> None:
        self._build = build
        self._compiled: dict[str, tuple[str, list[str] | None, dict[str, Any]]] = {}

    def _compile(self, dialect: Dialect) -> tuple[str, list[str] | None, dict[str, Any]]:
        if dialect.name not in self._compiled:
            compiled = self._build(dialect.name).compile(dialect=dialect)
            order = list(compiled.positiontup or []) if compiled.positional else None
            constants = compiled.construct_params(_check=False)  # the literal values in it
            self._compiled[dialect.name] = (compiled.string, order, dict(constants))
        return self._compiled[dialect.name]

    def execute(self, session: Session, parameters: dict[str, Any]) -> Any:
        connection = session.connection()
        sql, order, constants = self._compile(connection.dialect)
        values = {**constants, **parameters}
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, [values[name] for name in order] if order is not None else values)
        return cursor

    def execute_many(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """The statement once per row, in one driver call (bulk writes)."""
        connection = session.connection()
        sql, order, constants = self._compile(connection.dialect)
        values: list[Any] = [{**constants, **row} for row in rows]
        if order is not None:
            values = [[row[name] for name in order] for row in values]
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.executemany(sql, values)

    def rows(self, session: Session, parameters: dict[str, Any]) -> list[Any]:
        cursor = self.execute(session, parameters)
        shape = _row_type(tuple(column[0] for column in cursor.description))
        return [shape._make(row) for row in cursor.fetchall()]

    def scalar(self, session: Session, parameters: dict[str, Any]) -> Any:
        row = self.execute(session, parameters).fetchone()
        return None if row is None else row[0]


@functools.cache
def _row_type(names: tuple[str, ...]) -> Any:
    return collections.namedtuple("DriverRow", names)


def driver_time(session: Session, value: datetime) -> Any:
    """A datetime as the driver stores it in our columns (see `UtcDateTime`)."""
    if session.get_bind().dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def from_driver_time(value: Any) -> datetime | None:
    """A datetime of our columns as a driver statement returns it, aware (UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)  # SQLite's text (`driver_time`)


def driver_json(session: Session, value: Any) -> Any:
    """A value for a JSON column as the driver takes it."""
    if session.get_bind().dialect.name == "sqlite":
        return json.dumps(value)
    from psycopg.types.json import Json

    return Json(value)
