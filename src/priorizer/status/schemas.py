"""Status and health shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from priorizer.harvest.schemas import HarvestRunRead
from priorizer.sources.schemas import SourceRead


class MaintenanceRunRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    slot: int | None = Field(description="The scheduled slot; null for a run asked for by hand.")
    runner: str = Field(description="host:pid of the process that ran it.")
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    outcome: Literal["running", "ok", "failed", "interrupted"]
    error: str | None
    steps: dict[str, Any] | None = Field(description="What each step did.")
    stats: dict[str, Any] | None = Field(None, description="The statistics snapshot it took.")


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
    assets_with_a_copy: int = Field(description="Assets with a copy that counts (not disputed).")
    assets_at_target: int = Field(description="Assets whose counted copies reach the target.")
    assets_with_conflicting_copies: int = Field(description="Nodes reported different checksums.")
    disputed_copies: int = Field(
        0,
        description="Copies that disagree with the others (checksum) or with the asset's size: "
        "recorded, but not counted toward the target.",
    )
    assets_with_disputed_copies: int = Field(
        0, description="Assets with such copies: they stay in the queue for a further copy."
    )
    unreachable_assets: int = Field(description="Failed by FAILURE_THRESHOLD distinct nodes.")
    withdrawn_assets: int
    lost_nodes: int = Field(description="Unseen for NODE_LOST_DAYS; their copies do not count.")
    replication_target: int
    last_maintenance: MaintenanceRunRead | None = Field(
        description="The last maintenance cycle that finished: when, how long, with what outcome."
    )
    last_snapshot: dict[str, Any] | None = Field(
        description="Statistics taken by the last successful cycle (distributions, fleet, "
        "lease events since the cycle before)."
    )
    health_reason: str | None = Field(None, description="Why the system is degraded.")
    harvest: HarvestRunRead | None = Field(
        None, description="The latest harvest run: its progress, or its result."
    )
    sources: list[SourceRead] = Field(
        [], description="The watched sources: last run, next run, datasets, removed, errors."
    )
    removed_without_copy: int = Field(
        0,
        description="Assets of datasets removed upstream that no node holds yet (see GET "
        "/assets?state=removed_upstream&copies=0).",
    )
    discovery: dict[str, Any] | None = Field(
        None,
        description="Assets probed and not yet, gone (404/410) and expanded; bytes_known (the "
        "sizes known); gone_with_copies: the most precious, only nodes hold them now.",
    )


class HealthRead(BaseModel):
    status: Literal["ok", "unavailable"]
    database: bool
    scheduler: bool
    maintenance: bool = Field(description="The last cycle succeeded, on time.")
    reason: str | None = None
