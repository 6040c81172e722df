"""Catalog shapes on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from priorizer.catalog.models import ASSET_STATES

# No control characters in ids: PostgreSQL cannot store NUL, and none belongs in an id.
AssetId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
# Free text from imports: anything but NUL (which PostgreSQL cannot store).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
Priority = Annotated[int, Field(ge=1, le=10, strict=True)]
AssetState = Literal["active", "unreachable", "withdrawn", "gone", "expanded"]
assert set(AssetState.__args__) == set(ASSET_STATES)  # type: ignore[attr-defined]
# What GET /assets filters on: an asset's state, or `removed_upstream` (its dataset's).
AssetStateFilter = Literal[AssetState, "removed_upstream"]


class PriorityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_id: AssetId
    new_priority: Priority


class UpdateCkanRequest(BaseModel):
    """The seed's `/update-ckan` body. One bad entry rejects the whole batch."""

    model_config = ConfigDict(extra="forbid")

    updates: Annotated[list[PriorityUpdate], Field(max_length=10_000)]

    @model_validator(mode="after")
    def _one_priority_per_asset(self) -> UpdateCkanRequest:
        wanted: dict[str, int] = {}
        for update in self.updates:
            if wanted.setdefault(update.asset_id, update.new_priority) != update.new_priority:
                raise ValueError(f"asset {update.asset_id!r} is given two different priorities")
        return self


class UpdateCkanResponse(BaseModel):
    status: Literal["success"] = "success"
    updated_items: int = Field(description="Assets whose priority really changed.")
    unchanged_items: int = Field(0, description="Known assets that already had that priority.")
    unknown_ids: list[str] = Field(default_factory=list, description="Ids not in the catalog.")


class AssetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    name: str
    size_mb: float | None
    priority: int = Field(description="Effective priority, 1-10, used for allocation.")
    base_priority: int = Field(description="The priority set by import or operator.")
    format: str | None
    dataset_id: str | None
    state: str = Field(
        description="active, unreachable (failed by too many nodes), withdrawn, gone (its "
        "origin answered 404 or 410) or expanded (a listing or landing page whose files are "
        "its children)."
    )
    copies: int = Field(description="Copies on nodes that are not lost.")
    disputed_copies: int = Field(
        0, description="Of `copies`, those disputed: they do not count toward the target."
    )
    leases: int
    checksum_sha256: str | None = Field(
        description="The settled checksum: the one most copies report (ties: the first)."
    )
    conflicting_copies: bool = Field(description="Nodes reported different checksums.")
    is_size_reported: bool = Field(
        False, description="The size came from nodes' copies, not from the catalog."
    )
    failed_nodes: int = Field(description="Distinct nodes that failed it since reinstated.")
    state_reason: str | None = Field(None, description="Why it is unreachable.")
    rank: float | None = Field(description="Queue position value; null when not handed out.")
    parent_id: str | None = Field(None, description="The listing or page it was found in.")
    probed_at: datetime | None = Field(None, description="When discovery last probed its URL.")
    has_magnet_link: bool = Field(False, description="A copy was reported with a magnet link.")
    created_at: datetime
    updated_at: datetime


class AssetPage(BaseModel):
    items: list[AssetRead]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class HoldingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    allocation_id: int = Field(validation_alias="id")
    node_id: str
    status: str
    allocated_at: datetime
    renewed_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    note: str | None = Field(None, description="Why it closed, when it did.")
    reason_code: str | None = Field(None, description="A failure's reason code.")
    checksum_sha256: str | None = None
    magnet_link: str | None = None
    reported_size_mb: float | None = Field(None, description="The size reported with a copy.")
    dispute: str | None = Field(
        None,
        description="Why a copy is disputed: its size contradicts the asset's (size) or its "
        "checksum is not the settled one (checksum); null when it agrees.",
    )


class ProbeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    final_url: str | None = Field(description="Where redirects led.")
    status: int | None = Field(description="The HTTP status (FTP: 200 or 404); null on error.")
    content_type: str | None
    size_bytes: int | None
    last_modified: str | None
    etag: str | None
    kind: str = Field(description="file, listing, landing, gone or error.")
    error: str | None = Field(description="Why the probe failed, when it did.")
    children: int = Field(description="Child assets found in it (listings and pages).")
    probed_at: datetime


class ChildRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    url: str
    state: str
    size_mb: float | None


class AssetDiscovery(BaseModel):
    probe: ProbeRead | None = Field(None, description="The last probe of its URL.")
    parent: ChildRead | None = Field(None, description="The listing or page it was found in.")
    children: list[ChildRead] = Field(
        default_factory=list, description="Its first 1,000 child assets, by id."
    )
    children_total: int = 0


class AssetDetail(AssetRead):
    open_leases: list[HoldingRead]
    holders: list[HoldingRead] = Field(description="Nodes holding a completed copy.")
    history: list[HoldingRead] = Field(description="Closed allocations, newest first.")
    discovery: AssetDiscovery = Field(
        default_factory=AssetDiscovery, description="Its probe record, parent and children."
    )


class AssetIdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_ids: Annotated[list[AssetId], Field(min_length=1, max_length=10_000)]


class AssetStateResponse(BaseModel):
    status: Literal["success"] = "success"
    changed: int = Field(description="Known assets set to the new state.")
    unknown_ids: list[str] = Field(default_factory=list, description="Ids not in the catalog.")
