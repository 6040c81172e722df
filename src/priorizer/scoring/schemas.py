"""What the scoring routes send."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class FactorRead(BaseModel):
    factor: str = Field(
        description="organization, keywords, popularity, size, age, removed_upstream"
    )
    detail: str = Field(description="What the factor saw.")
    points: float = Field(description="What it added to (or took from) the score.")


class PriorityExplanation(BaseModel):
    asset_id: str
    dataset_id: str | None
    policy: str = Field(description="The scoring policy's name.")
    base: float = Field(description="The policy's starting score.")
    factors: list[FactorRead] = Field(description="Each factor that gave points, in order.")
    raw_score: float = Field(description="base plus every factor's points")
    policy_priority: int = Field(description="raw_score rounded (halves up), kept within 1-10")
    manual_priority: int | None = Field(description="A priority a person gave: it wins.")
    base_priority: int = Field(description="The asset's base priority now.")
    effective_priority: int = Field(description="base_priority with the maintenance jitter.")
    decided_by: Literal["manual", "policy"]
