"""Small facts the service keeps about itself (the queue policy ranks were computed with)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from priorizer.db import Base, UtcDateTime


class SystemValue(Base):
    __tablename__ = "system_values"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
