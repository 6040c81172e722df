"""What to simulate: the catalog, the fleet and how its nodes behave, the settings to try.

The defaults are the scenario of issue 13: 100 nodes with 5-50 GiB free, 20,000 assets of
log-normal sizes (median 60 MB, sigma 1.6, capped at 60,000 MB) and priorities
round(normal(5.5, 2)) clamped to 1-10; every node asks until full and completes all it gets.
A scenario comes from a TOML file (same names, tables [catalog], [fleet], [settings]) with
command-line options on top; every value is checked, and a bad one is named.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from priorizer.config import Settings
from priorizer.errors import Invalid, PriorizerError

Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
STRICT = ConfigDict(extra="forbid")


class ScenarioError(Invalid):
    """A scenario that cannot be run; the message names what is wrong."""


class SimulationError(PriorizerError):
    """A simulation that could not go on (a server that does not answer, a database refused)."""


@dataclass(frozen=True, config=STRICT)
class CatalogSpec:
    assets: Annotated[int, Field(ge=1, le=10_000_000)] = 20_000
    size_median_mb: Positive = 60.0
    size_sigma: NonNegative = 1.6  # of the natural logarithm of the size
    size_cap_mb: Positive = 60_000.0
    priority_mean: Annotated[float, Field(allow_inf_nan=False)] = 5.5
    priority_sd: NonNegative = 2.0


@dataclass(frozen=True, config=STRICT)
class FleetSpec:
    nodes: Annotated[int, Field(ge=1, le=100_000)] = 100
    min_free_gb: Positive = 5.0
    max_free_gb: Positive = 50.0
    # From a lease to its copy (0: done before the node's next request).
    completion_delay_hours: NonNegative = 0.0
    # Nodes that fail assets, and the share of their assets they fail.
    failing_share: Share = 0.0
    failure_rate: Share = 0.5
    # Nodes that vanish (with their copies) at a moment of the campaign...
    vanish_share: Share = 0.0
    vanish_at_hours: NonNegative = 3.0
    # ... and the share of those that come back, disks intact, this long after.
    return_share: Share = 0.0
    return_after_days: Positive = 30.0

    @model_validator(mode="after")
    def _ordered(self) -> FleetSpec:
        if self.min_free_gb > self.max_free_gb:
            raise ValueError(f"min_free_gb ({self.min_free_gb}) is above max_free_gb")
        return self


@dataclass(frozen=True, config=STRICT)
class Scenario:
    seed: int = 1
    # Every node that has something to ask asks once per round.
    round_minutes: Annotated[float, Field(ge=1, le=10_080, allow_inf_nan=False)] = 60.0
    # The campaign ends when nothing can change any more, or after this long.
    max_days: Annotated[float, Field(gt=0, le=3650, allow_inf_nan=False)] = 120.0
    catalog: CatalogSpec = field(default_factory=CatalogSpec)
    fleet: FleetSpec = field(default_factory=FleetSpec)
    # Settings by their environment names (COPY_PENALTY = 1), over the environment's.
    settings: dict[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def has_churn(self) -> bool:
        return self.fleet.vanish_share > 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def load(path: Path | None, overrides: Mapping[str, Any]) -> Scenario:
    """The scenario of a TOML file (or the defaults), with `overrides` on top: keys are
    dotted names (`fleet.nodes`, `seed`), values as given; None values are skipped."""
    data: dict[str, Any] = _read_toml(path) if path is not None else {}
    for name, value in overrides.items():
        if value is None:
            continue
        *tables, key = name.split(".")
        target = data
        for table in tables:
            target = target.setdefault(table, {})
        target[key] = value
    return parse(data, source=str(path) if path else "the options")


def parse(data: Mapping[str, Any], *, source: str) -> Scenario:
    try:
        scenario = TypeAdapter(Scenario).validate_python(dict(data))
    except ValidationError as error:
        raise ScenarioError(f"{source}: " + _problems(error)) from error
    check_setting_names(scenario.settings, source=source)
    return scenario


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ScenarioError(f"cannot read {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path} is not valid TOML: {error}") from error


def _problems(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "scenario"
        lines.append(f"{where}: {problem['msg']} (got {problem.get('input')!r})")
    return "; ".join(lines)


def setting_names() -> frozenset[str]:
    """Every setting's environment name, as `Settings` reads it."""
    return frozenset(
        str(info.validation_alias)
        for info in Settings.model_fields.values()
        if info.validation_alias is not None
    )


def check_setting_names(names: Sequence[str] | Mapping[str, Any], *, source: str) -> None:
    unknown = sorted(set(names) - setting_names())
    if unknown:
        raise ScenarioError(
            f"{source}: unknown setting {', '.join(unknown)} (settings go by their environment "
            "names, such as COPY_PENALTY or REPLICATION_TARGET)"
        )


def parse_assignment(text: str, *, option: str) -> tuple[str, list[str]]:
    """`KEY=V1,V2,...` as (KEY, [V1, V2, ...])."""
    key, sep, values = text.partition("=")
    key = key.strip().upper()
    items = [value.strip() for value in values.split(",")]
    if not sep or not key or not all(items):
        raise ScenarioError(f"{option} {text!r}: expected KEY=VALUE[,VALUE...]")
    check_setting_names([key], source=option)
    return key, items


def variants(compare: Sequence[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """The settings of each run to compare: every combination of the values given."""
    if not compare:
        return [{}]
    keys = [key for key, _ in compare]
    if len(set(keys)) != len(keys):
        raise ScenarioError("--compare names the same setting twice")
    combos = itertools.product(*(values for _, values in compare))
    return [dict(zip(keys, combo, strict=True)) for combo in combos]
