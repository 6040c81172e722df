"""Status and health shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class StatusRead(BaseModel):
    ckan_datasets: int = Field(description="Assets in the catalog (the seed's name for them).")
    active_allocations: int = Field(description="Open leases.")
    next_auto_update: datetime | None = Field(description="Next maintenance cycle, if scheduled.")
    total_priority_score: int = Field(description="Sum of effective priorities over the catalog.")
    system_health: Literal["healthy", "degraded"]
    assets: int
    datasets: int
    nodes: int
    copies: int
    assets_with_a_copy: int
    assets_at_target: int
    replication_target: int
    last_maintenance: dict[str, Any] | None


class HealthRead(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
    scheduler: bool
    reason: str | None = None
