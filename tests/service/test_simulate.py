"""The simulator in-process: the real services on a temporary database of the configured kind,
the operator's own left alone, and what churn and failing nodes do to a campaign."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from priorizer.catalog.models import Asset
from priorizer.config import Settings
from priorizer.db import sqlite_path
from priorizer.simulate import engine, runs
from priorizer.simulate.catalog import generate, new_assets
from priorizer.simulate.local import local_driver
from priorizer.simulate.scenario import Scenario, SimulationError, load
from tests.conftest import PG_ADMIN_URL

STATES: Counter[str] = Counter()  # the assets' states at the end of the last `run_in`
SMALL = {"fleet.nodes": 12, "catalog.assets": 1500, "seed": 5}
# Disks with room to spare (the catalog takes about half): lost copies can be made again.
ROOMY = {**SMALL, "fleet.nodes": 20, "catalog.assets": 700, "fleet.vanish_share": 0.1}


def settings_of(db_url: str, tmp_path: Path) -> Settings:
    """The operator's settings: their database, and a data directory with a seed file in it."""
    data = tmp_path / "operator"
    data.mkdir()
    (data / "ckan_data.json").write_text('[{"id": "theirs", "url": "https://x.org/t"}]')
    return Settings.of(database_url=db_url, data_directory=data, priority_jitter=0)


def run_in(settings: Settings, scenario: Scenario) -> tuple[engine.Outcome, dict[str, int], str]:
    """Run the scenario; the copies of each asset in the simulation's database, and its URL."""
    items = generate(scenario.catalog, seed=scenario.seed)
    with local_driver(settings) as driver:
        driver.load(new_assets(items))
        outcome = engine.run(
            scenario,
            items,
            driver,
            target=settings.replication_target,
            lease_seconds=settings.allocation_expiry_seconds,
            lost_seconds=settings.node_lost_seconds,
        )
        with driver.database.read() as session:
            rows = session.execute(select(Asset.id, Asset.copies, Asset.state)).all()
        url = driver.database.url
    recorded = {asset_id: copies for asset_id, copies, _ in rows}
    STATES.clear()
    STATES.update(Counter(state for _, _, state in rows))
    return outcome, recorded, url


def database_exists(url: str) -> bool:
    if url.startswith("sqlite"):
        return Path(sqlite_path(url) or "").exists()
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:
            query = text("SELECT 1 FROM pg_database WHERE datname = :name")
            return conn.execute(query, {"name": url.rsplit("/", 1)[1]}).first() is not None
    finally:
        admin.dispose()


def test_a_run_drives_the_real_services_on_a_database_of_its_own(db_url, tmp_path):
    settings = settings_of(db_url, tmp_path)
    operator_file = Path(sqlite_path(db_url) or "") if db_url.startswith("sqlite") else None
    before = operator_file.stat().st_mtime_ns if operator_file else None

    outcome, recorded, url = run_in(settings, load(None, SMALL))

    assert url != settings.sqlalchemy_url
    assert url.startswith("sqlite") == db_url.startswith("sqlite")  # the configured kind
    assert not database_exists(url), "the temporary database is removed"
    if operator_file is not None:
        assert operator_file.stat().st_mtime_ns == before
    else:  # the operator's PostgreSQL database got none of the simulation's rows
        operator = create_engine(db_url)
        with operator.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM assets")).scalar() == 0
        operator.dispose()
    # What the fleet holds is what the service recorded, within the replication target.
    fleet_copies = {asset_id: n for asset_id, n in recorded.items() if n}
    assert outcome.summary["copies"] == sum(fleet_copies.values()) > 0
    assert outcome.summary["assets_held"] == len(fleet_copies)
    assert "theirs" not in recorded
    assert max(recorded.values()) <= settings.replication_target
    assert outcome.counts["completions"] == outcome.counts["leases"]
    assert outcome.summary["held_mb"] <= outcome.summary["capacity_mb"]


def test_postgresql_and_sqlite_give_the_same_figures(pg_session_url, tmp_path):
    scenario = load(None, SMALL)
    on_sqlite = runs.simulate(scenario, [{"DATABASE_URL": ""}])["runs"][0]
    on_postgresql = runs.simulate(scenario, [{"DATABASE_URL": pg_session_url}])["runs"][0]
    for varying in ("seconds", "database", "settings"):
        on_sqlite.pop(varying), on_postgresql.pop(varying)
    assert on_sqlite == on_postgresql


def test_a_database_that_cannot_be_created_is_named(tmp_path):
    settings = Settings.of(database_url="postgresql://nobody@127.0.0.1:1/none")
    with (
        pytest.raises(SimulationError, match="cannot create a temporary database on"),
        local_driver(settings),
    ):
        pass


def test_copies_lost_with_vanished_nodes_are_made_again_once_the_server_knows(db_url, tmp_path):
    settings = settings_of(db_url, tmp_path)
    outcome, _recorded, _url = run_in(settings, load(None, ROOMY))

    churn = outcome.churn
    assert churn is not None and churn["vanished_nodes"] == 2
    assert churn["before"]["top_at_target"] == 1.0
    assert churn["top_assets_hit"] > 0
    assert churn["after"]["top_short"] == churn["top_assets_hit"]  # their copies are gone
    # The server learns of it only after NODE_LOST_DAYS; until then the hit assets stay short.
    vanished_at, knew = churn["vanished_at_hours"], churn["server_knew_after_hours"]
    lost_hours = settings.node_lost_days * 24  # after their last call, before they vanished
    assert lost_hours - vanished_at < knew <= lost_hours
    hidden = [p for p in outcome.series if vanished_at <= p["hours"] < vanished_at + knew]
    assert hidden and {p["top_short"] for p in hidden} == {churn["top_assets_hit"]}
    # Then the fleet, with room to spare, makes every lost copy again: in the round after the
    # server learned of the last vanished node.
    assert knew < churn["recovered_after_hours"] <= lost_hours + 1.01
    assert churn["end"]["top_at_target"] == 1.0 and churn["end"]["top_short"] == 0
    assert outcome.counts["nodes_marked_lost"] == 2


def test_nodes_that_come_back_bring_their_copies(tmp_path):
    settings = settings_of(f"sqlite:///{tmp_path / 'operator.sqlite3'}", tmp_path)
    scenario = load(None, {**ROOMY, "fleet.return_share": 1.0, "fleet.return_after_days": 30})
    outcome, recorded, _url = run_in(settings, scenario)

    assert outcome.counts["nodes_returned"] == 2
    assert outcome.churn is not None and outcome.churn["end"]["live_nodes"] == 20
    # Back, their copies count again on the server too: some assets are now over the target
    # (they were copied again meanwhile), and the fleet's view matches the service's.
    assert outcome.summary["copies"] == sum(recorded.values())
    assert max(recorded.values()) > settings.replication_target


def test_failing_nodes_report_failures_and_assets_become_unreachable(tmp_path):
    settings = settings_of(f"sqlite:///{tmp_path / 'operator.sqlite3'}", tmp_path)
    scenario = load(
        None,
        {**SMALL, "fleet.failing_share": 0.5, "fleet.failure_rate": 0.7, "max_days": 1},
    )
    outcome, recorded, _url = run_in(settings, scenario)

    assert outcome.counts["failures"] > 0
    assert outcome.summary["copies"] == sum(recorded.values()) > 0
    # Assets failed by FAILURE_THRESHOLD nodes are no longer handed out (failing nodes that
    # complete some of their files have a record: each counts whole). The campaign ends by
    # max_days at the latest (with smallest-first, the fleet runs out of assets it may still
    # be given a few rounds before).
    assert STATES["unreachable"] > 0
    assert 12 <= outcome.simulated_hours <= 24


def test_an_operators_catalog_file_with_unknown_sizes(tmp_path):
    """--catalog: an exported ckan_data.json; an unknown size counts as UNKNOWN_SIZE_MB, in the
    budget (it decides what fits) as in the measures."""
    path = tmp_path / "ckan_data.json"
    path.write_text(
        json.dumps(
            [
                {"id": "a", "url": "https://x.org/a", "size_mb": None, "priority": 10},
                {"id": "b", "url": "https://x.org/b", "size_mb": 50, "priority": 9},
                {"id": "c", "url": "https://x.org/c", "size_mb": 3000, "priority": 5},
            ]
        )
    )
    one_node = {"fleet.nodes": 1, "fleet.min_free_gb": 1.5, "fleet.max_free_gb": 1.5}
    report = runs.simulate(
        load(None, one_node),
        [
            {"DATABASE_URL": "", "UNKNOWN_SIZE_MB": "1024"},
            {"DATABASE_URL": "", "UNKNOWN_SIZE_MB": "5000"},
        ],
        catalog_file=path,
    )
    assumed, too_big = ({r["priority"]: r for r in run["per_priority"]} for run in report["runs"])
    assert report["scenario"]["catalog"] == f"{path} (3 assets)"
    assert (assumed[10]["held"], assumed[10]["mb"], assumed[9]["held"]) == (1, 1024, 1)
    assert (too_big[10]["held"], too_big[10]["mb"], too_big[9]["held"]) == (0, 5000, 1)
    assert assumed[5]["held"] == too_big[5]["held"] == 0  # 3000 MB never fits 1.5 GiB
