"""One simulation, or several side by side: the scenario's catalog and fleet under each set of
settings to compare, in-process or against a server; results as plain data (JSON-ready)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from priorizer.catalog.service import NewAsset
from priorizer.config import Settings, describe_settings_error
from priorizer.simulate import catalog, engine
from priorizer.simulate.engine import Outcome
from priorizer.simulate.local import local_driver
from priorizer.simulate.remote import TIMEOUT_SECONDS, RemoteDriver, check_fresh
from priorizer.simulate.scenario import Scenario, ScenarioError

# The maintenance cycle's random priority variation would make runs irreproducible (it draws
# in SQL): off unless the scenario sets it.
SIMULATION_DEFAULTS: dict[str, Any] = {"PRIORITY_JITTER": 0}


def settings_for(scenario: Scenario, variant: Mapping[str, str]) -> Settings:
    """The environment's settings, under the scenario's and then the variant's."""
    values = {**SIMULATION_DEFAULTS, **scenario.settings, **variant}
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ScenarioError(describe_settings_error(error)) from error


def simulate(
    scenario: Scenario, variants: Sequence[Mapping[str, str]], *, catalog_file: Path | None = None
) -> dict[str, Any]:
    """In-process: the scenario's catalog (generated, or read from `catalog_file`) under each
    variant of the settings, each on a temporary database of its own."""
    for variant in variants:  # every variant's settings checked before the first run
        settings_for(scenario, variant)
    described = scenario.as_dict()
    if catalog_file is None:
        assets = catalog.new_assets(catalog.generate(scenario.catalog, seed=scenario.seed))
    else:
        assets = catalog.read_seed_file(catalog_file)
        described["catalog"] = f"{catalog_file} ({len(assets):,} assets)"
    runs = [_run_local(scenario, assets, variant) for variant in variants]
    return {"scenario": described, "driver": "in-process", "runs": runs}


def _run_local(
    scenario: Scenario, assets: Sequence[NewAsset], variant: Mapping[str, str]
) -> dict[str, Any]:
    settings = settings_for(scenario, variant)
    items = catalog.items_of(assets, unknown_size_mb=settings.unknown_size_mb)
    started = time.perf_counter()
    with local_driver(settings) as driver:
        driver.load(assets)
        outcome = engine.run(
            scenario,
            items,
            driver,
            target=settings.replication_target,
            lease_seconds=settings.allocation_expiry_seconds,
            lost_seconds=settings.node_lost_seconds,
        )
        database = "sqlite" if driver.database.is_sqlite else "postgresql"
    return {**result(outcome, variant, seconds=time.perf_counter() - started), "database": database}


def simulate_remote(scenario: Scenario, *, url: str, unknown_size_mb: float) -> dict[str, Any]:
    """Over HTTP: the fleet asks the server at `url`, whose own catalog and settings apply."""
    if scenario.has_churn:
        raise ScenarioError(
            "vanishing nodes need simulated time (NODE_LOST_DAYS, lease expiry): run it "
            "in-process, without --url"
        )
    if scenario.settings:
        raise ScenarioError(
            "over HTTP the server's own settings apply: start the server with "
            f"{', '.join(sorted(scenario.settings))} instead of setting them here"
        )
    started = time.perf_counter()
    with httpx.Client(base_url=url.rstrip("/"), timeout=TIMEOUT_SECONDS) as client:
        driver = RemoteDriver(client)
        status = driver.status()
        check_fresh(status, url)
        items = driver.read_catalog(unknown_size_mb=unknown_size_mb)
        outcome = engine.run(
            scenario,
            items,
            driver,
            target=int(status["replication_target"]),
            lease_seconds=float("inf"),  # the server's leases run on its own clock
            lost_seconds=float("inf"),
        )
    run = {**result(outcome, {}, seconds=time.perf_counter() - started), "database": "server's"}
    described = {**scenario.as_dict(), "catalog": f"the server's ({len(items):,} assets)"}
    return {"scenario": described, "driver": f"HTTP ({url})", "runs": [run]}


def result(outcome: Outcome, variant: Mapping[str, str], *, seconds: float) -> dict[str, Any]:
    return {
        "settings": dict(variant),
        **outcome.summary,
        "time_to_cover_top_hours": outcome.time_to_cover_top_hours,
        "simulated_hours": outcome.simulated_hours,
        "counts": outcome.counts,
        "per_priority": [dataclasses.asdict(row) for row in outcome.per_priority],
        "copies_histogram": {str(k): v for k, v in outcome.copies_histogram.items()},
        "churn": outcome.churn,
        "series": outcome.series,
        "seconds": round(seconds, 3),
    }
