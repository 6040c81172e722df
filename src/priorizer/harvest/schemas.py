"""What the harvest routes take and send."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

PortalUrl = Annotated[
    str, StringConstraints(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f]+$")
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$")]


class HarvestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: PortalUrl = Field(description="The portal: its site or its API URL (http or https).")
    organization: Name | None = Field(None, description="Only this organization's datasets.")
    query: Name | None = Field(None, description="Only the datasets this search finds.")
    since: AwareDatetime | None = Field(
        None, description="Only datasets modified since; nothing is marked removed."
    )
    incremental: bool = Field(False, description="From the source's last complete run.")
    kind: Literal["ckan", "dcat"] | None = Field(
        None,
        description="ckan, or dcat (a data.json catalog); by default a URL ending in .json "
        "is a data.json.",
    )


class HarvestStarted(BaseModel):
    status: Literal["started"] = "started"
    source: str
    run_id: int = Field(description="The run, in /harvest/runs (a resumed one keeps its id).")


class HarvestRunRead(BaseModel):
    id: int
    source: str
    state: str = Field(
        description="running, interrupted (continued by the next run), failed (a portal that "
        "cannot be paged: not continued) or ok"
    )
    since: datetime | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    expected: int | None = Field(description="Datasets the portal said it had.")
    pages: int
    datasets: int
    assets_created: int
    assets_updated: int
    shared_urls: int = Field(description="Resources whose URL another resource listed too.")
    skipped_resources: dict[str, Any] = Field(description="Resources not assets, by reason.")
    removed_upstream: int | None = Field(description="Datasets found vanished (full runs).")
    returned_upstream: int | None
    retries: int
    datasets_per_second: float | None
    pages_to_discover: int | None = Field(
        None,
        description="data.json distributions with only an accessURL: pages stored as "
        "assets, for discovery to expand.",
    )
    paging: str | None = Field(
        None,
        description="keyset, offset (the portal ignored the filter or the sort), or "
        "stream (a data.json).",
    )
    paging_note: str | None = Field(None, description="Why the harvest paged as it did.")
    error: str | None
