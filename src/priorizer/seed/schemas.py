"""The seed service's JSON files: `ckan_data.json` (assets) and `allocations.json` (leases)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from priorizer.catalog.schemas import AssetId, Text
from priorizer.node.schemas import NodeId

# Missing priorities get the middle of the scale, so they neither jump nor starve the queue.
DEFAULT_PRIORITY = 5


class SeedAsset(BaseModel):
    """One row of `ckan_data.json`. Fields we do not model are kept and exported back."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)

    id: AssetId
    url: Annotated[Text, StringConstraints(min_length=1, max_length=8192)]
    name: Text | None = None
    size_mb: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)] | None = None
    priority: Annotated[int, Field(ge=1, le=10)] = DEFAULT_PRIORITY
    dataset_id: Annotated[Text, StringConstraints(max_length=200)] | None = None
    format: Annotated[Text, StringConstraints(max_length=100)] | None = None

    def extras(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    @model_validator(mode="after")
    def _extras_round_trip(self) -> SeedAsset:
        # Kept fields are exported again: refuse now what could not be written back
        # (NaN, Infinity, lone surrogates), rather than break every later export.
        try:
            json.dumps(self.extras(), allow_nan=False, ensure_ascii=False).encode()
        except (ValueError, UnicodeEncodeError) as error:
            raise ValueError(f"an extra field cannot be kept as JSON ({error})") from error
        return self


class SeedAllocation(BaseModel):
    """One lease or copy in `allocations.json`."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    asset_id: AssetId
    node_id: NodeId
    status: Literal["allocated", "completed"] = "allocated"
    allocated_at: AwareDatetime | None = None
    expires_at: AwareDatetime | None = None


def naive_to_utc(value: Any) -> Any:
    """The seed wrote `datetime.now().isoformat()`: no zone. Read those as UTC; leave values
    that carry an offset, and anything that is not a timestamp, to validation."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return parsed.replace(tzinfo=UTC).isoformat() if parsed.tzinfo is None else value
