"""Node shapes on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NodeId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$"),
    Field(description="1-128 characters: letters, digits and . _ : @ -", examples=["node-123"]),
]


class NodeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    first_seen_at: datetime
    last_seen_at: datetime
    free_space_mb: float | None = Field(description="Free space the node last reported.")
    open_leases: int = 0
    reserved_mb: float = Field(0.0, description="Space its open leases reserve.")
    copies: int = 0
    enrolled_at: datetime | None = Field(None, description="When its current token was issued.")
    revoked_at: datetime | None = Field(
        None, description="When an admin revoked it: refused until an admin reinstates it."
    )


class NodeDetail(NodeRead):
    """A node with its standing (docs/maintenance.md)."""

    completions: int
    failures: int
    expirations: int
    releases: int
    consecutive_successes: int
    lease_cap: int = Field(description="Open leases it may hold at once.")
    median_turnaround_seconds: float | None = Field(
        description="From lease to reported copy, over its latest 200 completions."
    )
    lost: bool = Field(description="Unseen for NODE_LOST_DAYS: its copies do not count.")
    lost_at: datetime | None


class NodePage(BaseModel):
    items: list[NodeRead]
    next_cursor: str | None


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node_id: NodeId | None = Field(None, description="The node's id; one is made up if absent.")
    rotate: bool = Field(False, description="Admin only: issue a new token to an enrolled node.")


class EnrollResponse(BaseModel):
    node_id: str
    token: str = Field(description="Shown once: only its digest is kept. Send it as a bearer.")


class RevokeResponse(BaseModel):
    status: str = "revoked"
    node_id: str
    revoked_at: datetime | None = Field(None, description="Since when (the first revocation).")


class ReinstateResponse(BaseModel):
    status: str = "reinstated"
    node_id: str
    was_revoked: bool = Field(description="False: it was not revoked, nothing changed.")
