"""Allocation shapes on the wire (the seed's, with fields added, never renamed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from priorizer.allocation.models import STATUSES
from priorizer.catalog.schemas import AssetId
from priorizer.node.schemas import NodeId

AllocationStatus = Literal["allocated", "completed", "released", "expired", "failed"]
assert set(AllocationStatus.__args__) == set(STATUSES)  # type: ignore[attr-defined]

MAX_FREE_SPACE_GB = 1e7  # 10 PB: more than any node; beyond it the number is a mistake.


class AllocateRequest(BaseModel):
    free_space_gb: Annotated[
        float,
        Field(
            gt=0,
            le=MAX_FREE_SPACE_GB,
            allow_inf_nan=False,
            strict=True,
            description="Free disk space on the node, in GiB (1 GiB = 1024 MiB).",
            examples=[10],
        ),
    ]
    node_id: NodeId | None = Field(
        None, description="The node asking; a new id is generated and returned when missing."
    )


class AllocatedAsset(BaseModel):
    id: str
    url: str
    size_mb: float | None = Field(description="Size in MiB; null when unknown.")
    priority: int
    name: str
    dataset_id: str | None
    format: str | None
    allocation_id: int
    node_id: str
    expires_at: datetime
    reserved_mb: float = Field(description="What the lease takes from the node's budget.")


class ReleaseRequest(BaseModel):
    asset_id: AssetId
    node_id: NodeId


class ReleaseResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Asset released successfully"


class AllocationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    asset_id: str
    node_id: str
    status: AllocationStatus
    reserved_mb: float
    allocated_at: datetime
    renewed_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class AllocationPage(BaseModel):
    items: list[AllocationRead]
    next_cursor: int | None


class RankingEntry(BaseModel):
    id: str
    url: str
    name: str
    size_mb: float | None
    priority: int
    budget_mb: float
    format: str | None
    dataset_id: str | None
    rank: float
    copies: int
    leases: int
