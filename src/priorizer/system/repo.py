"""The service's own small facts, as key/value rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from priorizer.db import dialect_insert
from priorizer.system.models import SystemValue

values = cast(Table, SystemValue.__table__)


def get(session: Session, *, key: str) -> Any:
    row = session.get(SystemValue, key)
    return None if row is None else row.value


def put(session: Session, *, key: str, value: Any, now: datetime) -> None:
    statement = dialect_insert(session, values).values(key=key, value=value, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[values.c.key], set_={"value": value, "updated_at": now}
        )
    )
