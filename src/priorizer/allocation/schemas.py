"""Allocation shapes on the wire (the seed's, with fields added, never renamed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from priorizer.allocation.evidence import FailureCode
from priorizer.allocation.models import STATUSES
from priorizer.bodies import LenientBody, StrictBody
from priorizer.catalog.schemas import AssetId
from priorizer.node.schemas import NodeId

AllocationStatus = Literal["allocated", "completed", "released", "expired", "failed"]
assert set(AllocationStatus.__args__) == set(STATUSES)  # type: ignore[attr-defined]

MAX_FREE_SPACE_GB = 1e7  # 10 PB: more than any node; beyond it the number is a mistake.


class AllocateRequest(LenientBody):
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
    size_bytes: int | None = Field(
        None, description="The exact size in bytes, when a copy was reported with it."
    )
    checksum_sha256: str | None = Field(
        None,
        description="SHA-256 of the copies already reported, when they agree: a download "
        "that differs is a `checksum_mismatch`.",
    )
    magnet_links: list[str] = Field(
        default_factory=list,
        description="Magnet links of copies already held: peers to fetch from when the "
        "origin is gone.",
    )


class ReleaseRequest(LenientBody):
    asset_id: AssetId
    node_id: NodeId


class ReleaseResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Asset released successfully"


Sha256 = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True),
    Field(description="SHA-256 of the file, 64 hexadecimal digits."),
]
MagnetLink = Annotated[
    str,
    StringConstraints(max_length=4096, pattern=r"^magnet:\?[^\x00-\x1f\x7f]*$"),
    Field(description="A magnet link (magnet:?...) where the copy is seeded."),
]


class CompleteRequest(StrictBody):
    asset_id: AssetId
    node_id: NodeId
    checksum_sha256: Sha256 | None = None
    magnet_link: MagnetLink | None = None
    size_mb: Annotated[
        float | None,
        Field(
            gt=0,
            le=MAX_FREE_SPACE_GB * 1024,
            allow_inf_nan=False,
            strict=True,
            description="The size the node found, in MiB; fills in an unknown size, and a copy "
            "whose size contradicts a known one (beyond SIZE_TOLERANCE) is disputed.",
        ),
    ] = None
    size_bytes: Annotated[
        int | None,
        Field(
            ge=0,
            le=int(MAX_FREE_SPACE_GB) << 30,
            strict=True,
            description="The exact size in bytes; the first one reported is kept and handed "
            "to the next nodes to verify against.",
        ),
    ] = None


class CompleteResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Copy recorded"
    allocation_id: int
    copies: int = Field(
        description="Copies of the asset on nodes that are not lost, disputed ones included."
    )
    conflicting_copies: bool = Field(description="Nodes reported different checksums for it.")
    already_recorded: bool = Field(description="This copy had been reported before (a retry).")
    late: bool = Field(description="The lease had expired; the copy was recorded anyway.")
    disputed: bool = Field(
        description="This copy is disputed: recorded, but not counted toward the target (its "
        "size contradicts the asset's beyond SIZE_TOLERANCE, or its checksum is not the one "
        "most copies report); a further node gets the asset."
    )
    dispute: Literal["size", "checksum"] | None = Field(description="Why it is disputed.")
    disputed_copies: int = Field(description="Of `copies`, those disputed.")
    unreachable: bool = Field(
        description="Too many copies disagreed: the asset is no longer handed out."
    )


ReasonText = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]+$")]


class FailRequest(StrictBody):
    asset_id: AssetId
    node_id: NodeId
    reason_code: FailureCode | None = Field(
        None,
        description="Whose fault it is (docs/maintenance.md): asset-side codes (http_404, "
        "http_410, http_error, connection, not_a_file, too_large, size_mismatch, "
        "checksum_mismatch) count toward the asset's FAILURE_THRESHOLD; node-side ones "
        "(disk_full, shutting_down, node_error) never do. Missing: unspecified.",
    )
    reason: ReasonText | None = Field(
        None,
        validate_default=True,
        description="What went wrong, in words (HTTP 404 from ..., disk full, ...); "
        "required when no reason_code is given.",
    )

    @field_validator("reason")
    @classmethod
    def _reason_or_code(cls, reason: str | None, info: ValidationInfo) -> str | None:
        if reason is None and info.data.get("reason_code") is None:
            raise ValueError("give a reason, a reason_code, or both")
        return reason


class FailResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Failure recorded"
    allocation_id: int
    failed_nodes: int = Field(description="Distinct nodes that failed this asset.")
    unreachable: bool = Field(description="The asset is no longer handed out.")
    reason_code: FailureCode = Field(description="The code recorded (unspecified if none).")
    counts_against_asset: bool = Field(
        description="The failure counts toward the asset's FAILURE_THRESHOLD (not node-side)."
    )
    failure_weight: float = Field(
        description="What the failing nodes weigh against FAILURE_THRESHOLD: a node that has "
        "completed a copy counts 1, one that has not a third."
    )


class DiscardRequest(StrictBody):
    asset_id: AssetId
    node_id: NodeId
    reason: Annotated[
        str,
        StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00]+$"),
        Field(description="What happened to the copy (its SHA-256 changed, it was deleted...)."),
    ]


class DiscardResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Copy discarded; the asset returns to the queue"
    allocation_id: int
    copies: int = Field(description="Copies of the asset still counted.")


class RenewRequest(StrictBody):
    node_id: NodeId
    asset_ids: Annotated[
        list[AssetId] | None,
        Field(max_length=10_000, description="Leases to renew; all the node's when missing."),
    ] = None


class RenewResponse(BaseModel):
    status: Literal["success"] = "success"
    renewed: int = Field(description="Leases extended.")
    expires_at: datetime | None = Field(description="Their new expiry; null when none was.")
    not_renewed: list[str] = Field(
        description="Listed assets on which the node holds no open, unexpired lease."
    )


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
    note: str | None = None
    reason_code: str | None = Field(None, description="A failure's reason code.")
    checksum_sha256: str | None = None
    magnet_link: str | None = None
    reported_size_mb: float | None = Field(None, description="The size reported with a copy.")
    dispute: str | None = Field(
        None, description="Why a copy is disputed (size, checksum); null when it agrees."
    )


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
    disputed_copies: int = Field(description="Of `copies`, those disputed (not counted).")
