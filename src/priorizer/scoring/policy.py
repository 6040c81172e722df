"""The scoring policy (a TOML file) and the pure function that applies it.

`score(policy, facts, now)` gives each factor's points and the result, so the same code ranks
assets and explains the ranking (GET /assets/{id}/priority).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from priorizer.errors import Invalid

MIN_PRIORITY, MAX_PRIORITY = 1, 10
DAYS_PER_YEAR = 365.25
Points = float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Keywords(_Strict):
    cap: Points = Field(3.0, ge=0)
    points: dict[str, Points] = Field(default_factory=dict)


class Popularity(_Strict):
    per_tenfold: Points = 0.0
    cap: Points = Field(0.0, ge=0)


class SizeBand(_Strict):
    up_to_mb: float | None = Field(None, ge=0)
    points: Points


class Size(_Strict):
    bands: list[SizeBand] = Field(default_factory=list)


class Age(_Strict):
    per_year: Points = 0.0
    cap: Points = Field(0.0, ge=0)


class RemovedUpstream(_Strict):
    points: Points = 0.0


class Policy(_Strict):
    """A scoring policy, as its TOML file says (see the default, `default_policy.toml`)."""

    name: str = "unnamed"
    base: float = Field(5.0, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    organizations: dict[str, Points] = Field(default_factory=dict)
    keywords: Keywords = Keywords()
    popularity: Popularity = Popularity()
    size: Size = Size()
    age: Age = Age()
    removed_upstream: RemovedUpstream = RemovedUpstream()

    @cached_property
    def keyword_words(self) -> list[str]:
        return sorted(self.keywords.points, key=len, reverse=True)

    @cached_property
    def keyword_pattern(self) -> re.Pattern[str] | None:
        """One pattern for every keyword, as whole words, any case; group `k<i>` says which
        (case-folding the match instead would fail on letters like 'İ')."""
        if not self.keyword_words:
            return None
        groups = (f"(?P<k{i}>{re.escape(word)})" for i, word in enumerate(self.keyword_words))
        return re.compile(r"(?<!\w)(?:" + "|".join(groups) + r")(?!\w)", re.I)


def load(path: Path | None = None) -> Policy:
    """The policy in `path`, or the default one shipped with Priorizer. A file that is not valid
    TOML, or names an unknown setting, is refused with where it is wrong."""
    if path is None:
        text = resources.files("priorizer.scoring").joinpath("default_policy.toml").read_text()
        where = "the default scoring policy"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise Invalid(f"cannot read scoring policy {path}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise Invalid(f"{path} is not UTF-8 text: {error.reason}") from error
        where = str(path)
    try:
        return Policy.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise Invalid(f"{where} is not valid TOML: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise Invalid(f"{where}: {problems}") from error


@dataclass(frozen=True, slots=True)
class Facts:
    """What scoring looks at: the asset's size and its dataset as the portal described it."""

    size_mb: float | None = None
    organization: str | None = None
    title: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    views: int | None = None
    modified_at: datetime | None = None
    removed_upstream: bool = False


@dataclass(frozen=True, slots=True)
class Factor:
    factor: str
    detail: str
    points: Points


@dataclass(frozen=True, slots=True)
class Score:
    factors: tuple[Factor, ...]
    raw: float  # base plus every factor's points
    result: int  # `raw` rounded (halves up) and kept within 1-10


def score(policy: Policy, facts: Facts, *, now: datetime) -> Score:
    """Apply the policy; factors that give no points are left out."""
    return combine(policy, dataset_factors(policy, facts, now=now), size_factor(policy, facts))


def dataset_factors(policy: Policy, facts: Facts, *, now: datetime) -> tuple[Factor, ...]:
    """The factors that depend on the dataset alone (the same for each of its files)."""
    return tuple(
        factor
        for factor in (
            _organization(policy, facts),
            _keywords(policy, facts),
            _popularity(policy, facts),
            _age(policy, facts, now),
            _removed(policy, facts),
        )
        if factor is not None and factor.points != 0
    )


def combine(policy: Policy, factors: tuple[Factor, ...], size: Factor | None) -> Score:
    """The score from the dataset's factors and the file's size factor."""
    if size is not None and size.points != 0:
        factors = (*factors, size)
    raw = policy.base + sum(f.points for f in factors)
    return Score(factors, round(raw, 6), _clamped(raw))


def _clamped(raw: float) -> int:
    """Rounded, halves up, and kept within 1-10 (7.499999999999999 from adding 2.8, 1.4 and
    0.3 to 3 is the 7.5 it shows, so 8)."""
    return min(MAX_PRIORITY, max(MIN_PRIORITY, math.floor(round(raw, 6) + 0.5)))


def _organization(policy: Policy, facts: Facts) -> Factor | None:
    if facts.organization is None or facts.organization not in policy.organizations:
        return None
    return Factor("organization", facts.organization, policy.organizations[facts.organization])


def _keywords(policy: Policy, facts: Facts) -> Factor | None:
    pattern = policy.keyword_pattern
    if pattern is None:
        return None
    text = " ".join(filter(None, (facts.title, facts.name, *facts.tags)))
    words = policy.keyword_words
    matched = sorted({words[int(m.lastgroup[1:])] for m in pattern.finditer(text) if m.lastgroup})
    if not matched:
        return None
    points = min(policy.keywords.cap, sum(policy.keywords.points[word] for word in matched))
    return Factor("keywords", ", ".join(matched), points)


def _popularity(policy: Policy, facts: Facts) -> Factor | None:
    if facts.views is None or facts.views <= 0:
        return None
    points = min(policy.popularity.cap, policy.popularity.per_tenfold * math.log10(facts.views))
    return Factor("popularity", f"{facts.views} views", round(points, 3))


def size_factor(policy: Policy, facts: Facts) -> Factor | None:
    band = size_band(policy, facts.size_mb)
    if band is None or facts.size_mb is None:
        return None
    limit = "any size" if band.up_to_mb is None else f"up to {band.up_to_mb:g} MB"
    return Factor("size", f"{facts.size_mb:g} MB ({limit})", band.points)


def size_band(policy: Policy, size_mb: float | None) -> SizeBand | None:
    """The band a size falls in; None for an unknown size or one past every band."""
    if size_mb is None:
        return None
    for band in policy.size.bands:
        if band.up_to_mb is None or size_mb <= band.up_to_mb:
            return band
    return None


def quick_result(policy: Policy, dataset_points: float, size_mb: float | None) -> int:
    """`score(...).result` from the sum of the dataset's factors' points and the file's size,
    without building the explanation (harvests score thousands of files a second)."""
    band = size_band(policy, size_mb)
    return _clamped(policy.base + (dataset_points + (band.points if band else 0.0)))


def _age(policy: Policy, facts: Facts, now: datetime) -> Factor | None:
    if facts.modified_at is None:
        return None
    years = math.floor(max(0.0, (now - facts.modified_at).days / DAYS_PER_YEAR))
    if years == 0:
        return None
    points = min(policy.age.cap, policy.age.per_year * years)
    return Factor("age", f"last modified {years} year{'s' if years > 1 else ''} ago", points)


def _removed(policy: Policy, facts: Facts) -> Factor | None:
    if not facts.removed_upstream:
        return None
    return Factor(
        "removed_upstream", "the dataset vanished from its portal", policy.removed_upstream.points
    )


def as_dict(result: Score) -> dict[str, Any]:
    return {
        "factors": [
            {"factor": f.factor, "detail": f.detail, "points": f.points} for f in result.factors
        ],
        "raw_score": result.raw,
        "policy_priority": result.result,
    }
