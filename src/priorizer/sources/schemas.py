"""What the watched-source routes take and send."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from priorizer.harvest.schemas import Name, PortalUrl


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: PortalUrl = Field(description="A CKAN portal (site or API URL) or a data.json's URL.")
    kind: Literal["ckan", "dcat"] | None = Field(
        None, description="ckan or dcat; by default a URL ending in .json is a data.json."
    )
    organization: Name | None = Field(None, description="CKAN: only this organization.")
    query: Name | None = Field(None, description="CKAN: only what this search finds.")
    every: str | float = Field(
        "6h", description="How often to harvest it: seconds, or 90s, 30m, 6h, 1d, 1w."
    )
    full_every: str | float | None = Field(
        None,
        description="A full run (which notices removals) at least this often; CKAN runs "
        "between are incremental. Default: a day (or `every`, if longer).",
    )


class SourceRead(BaseModel):
    id: int
    key: str = Field(description="The harvest's source key: its datasets carry it.")
    url: str
    kind: str
    organization: str | None
    query: str | None
    every_seconds: float
    full_every_seconds: float
    created_at: datetime
    next_run_at: datetime = Field(description="When it is due next (later after failures).")
    is_running: bool = Field(description="A server process is harvesting it now.")
    last_run_id: int | None = Field(description="Its last harvest run, in /harvest/runs.")
    last_run_at: datetime | None
    last_full_at: datetime | None
    last_state: str | None = Field(description="ok, failed, …: how its last harvest ended.")
    last_error: str | None
    failures: int = Field(description="Harvests failed in a row (each doubles the wait).")
    datasets: int = Field(description="Its datasets in the catalog.")
    removed_upstream: int = Field(description="Of them, those removed upstream.")


class SourceRemoved(BaseModel):
    status: Literal["removed"] = "removed"
    id: int
    key: str
