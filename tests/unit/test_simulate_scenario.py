"""Simulation scenarios (TOML and options), generated catalogs and fleets."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from priorizer.seed.service import parse_assets, read_json
from priorizer.simulate.catalog import generate, write_seed_file
from priorizer.simulate.fleet import Fleet
from priorizer.simulate.scenario import (
    CatalogSpec,
    FleetSpec,
    ScenarioError,
    load,
    parse_assignment,
    variants,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_defaults_are_the_scenario_of_issue_13():
    scenario = load(None, {})
    assert (scenario.fleet.nodes, scenario.fleet.min_free_gb, scenario.fleet.max_free_gb) == (
        100,
        5.0,
        50.0,
    )
    spec = scenario.catalog
    assert (spec.assets, spec.size_median_mb, spec.size_sigma, spec.size_cap_mb) == (
        20_000,
        60.0,
        1.6,
        60_000.0,
    )
    assert (spec.priority_mean, spec.priority_sd) == (5.5, 2.0)
    assert scenario.fleet.completion_delay_hours == 0
    assert (scenario.fleet.failing_share, scenario.fleet.vanish_share) == (0, 0)
    assert scenario.settings == {}


def test_a_toml_file_with_options_on_top(tmp_path):
    path = write(
        tmp_path / "s.toml",
        """
        seed = 7
        [catalog]
        assets = 500
        [fleet]
        nodes = 30
        vanish_share = 0.1
        [settings]
        COPY_PENALTY = 1
        """,
    )
    scenario = load(path, {"fleet.nodes": 40, "seed": None, "settings.REPLICATION_TARGET": "3"})
    assert (scenario.seed, scenario.catalog.assets, scenario.fleet.nodes) == (7, 500, 40)
    assert scenario.has_churn
    assert scenario.settings == {"COPY_PENALTY": 1, "REPLICATION_TARGET": "3"}


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[fleet]\nnodez = 3", "fleet.nodez"),
        ("[fleet]\nnodes = 0", "fleet.nodes"),
        ("[fleet]\nnodes = 'many'", "fleet.nodes"),
        ("[fleet]\nvanish_share = 1.5", "fleet.vanish_share"),
        ("[fleet]\nmin_free_gb = 60", "min_free_gb"),
        ("[catalog]\nsize_median_mb = -1", "catalog.size_median_mb"),
        ("colour = 'blue'", "colour"),
        ("[settings]\nCOPY_PENALTI = 1", "COPY_PENALTI"),
        ("[fleet\nnodes = 1", "not valid TOML"),
    ],
)
def test_a_bad_scenario_is_refused_naming_what_is_wrong(tmp_path, text, named):
    with pytest.raises(ScenarioError, match=named.replace(".", r"\.")):
        load(write(tmp_path / "bad.toml", text), {})


def test_a_missing_scenario_file_is_named(tmp_path):
    with pytest.raises(ScenarioError, match=r"cannot read .*absent\.toml"):
        load(tmp_path / "absent.toml", {})


def test_settings_to_compare_go_by_their_environment_names():
    assert parse_assignment("copy_penalty=0, 1,3", option="--compare") == (
        "COPY_PENALTY",
        ["0", "1", "3"],
    )
    runs = variants([("COPY_PENALTY", ["0", "3"]), ("REPLICATION_TARGET", ["2", "3"])])
    assert runs == [
        {"COPY_PENALTY": "0", "REPLICATION_TARGET": "2"},
        {"COPY_PENALTY": "0", "REPLICATION_TARGET": "3"},
        {"COPY_PENALTY": "3", "REPLICATION_TARGET": "2"},
        {"COPY_PENALTY": "3", "REPLICATION_TARGET": "3"},
    ]
    assert variants([]) == [{}]
    for bad in ("COPY_PENALTY", "COPY_PENALTY=", "=1", "COPY_PENALTY=1,,2", "NO_SUCH=1"):
        with pytest.raises(ScenarioError):
            parse_assignment(bad, option="--compare")
    with pytest.raises(ScenarioError, match="twice"):
        variants([("COPY_PENALTY", ["0"]), ("COPY_PENALTY", ["1"])])


def test_the_catalog_follows_the_issues_distributions():
    items = generate(CatalogSpec(), seed=1)
    sizes = [item.size_mb for item in items]
    assert len(items) == 20_000 and len({item.id for item in items}) == 20_000
    assert statistics.median(sizes) == pytest.approx(60, rel=0.05)
    logs = [math.log(size) for size in sizes if 0 < size < 60_000]
    assert statistics.stdev(logs) == pytest.approx(1.6, rel=0.05)
    assert max(sizes) == 60_000.0  # the cap is reached, never passed
    priorities = [item.priority for item in items]
    assert min(priorities) == 1 and max(priorities) == 10
    assert statistics.mean(priorities) == pytest.approx(5.5, abs=0.1)


def test_a_seed_gives_one_catalog_and_one_fleet():
    spec = CatalogSpec(assets=300)
    assert generate(spec, seed=4) == generate(spec, seed=4)
    assert generate(spec, seed=4) != generate(spec, seed=5)
    fleet_spec = FleetSpec(nodes=50, failing_share=0.2, vanish_share=0.1, return_share=0.5)
    one, two = (Fleet(fleet_spec, seed=4, lease_seconds=1, lost_seconds=1) for _ in range(2))
    assert one.capacities_mb == two.capacities_mb
    assert all(5 * 1024 <= c <= 50 * 1024 for c in one.capacities_mb)
    assert sum(node.failure_rate > 0 for node in one.nodes) == 10
    assert sum(node.vanish_at is not None for node in one.nodes) == 5
    assert sum(node.return_at is not None for node in one.nodes) == 2  # round(2.5), to even


def test_the_written_catalog_is_what_import_json_reads(tmp_path):
    items = generate(CatalogSpec(assets=200), seed=2)
    path = tmp_path / "out" / "ckan_data.json"
    write_seed_file(path, items)
    rows = parse_assets(read_json(path), source=str(path))
    assert [(row.id, row.size_mb, row.priority) for row in rows] == [
        (item.id, item.size_mb, item.priority) for item in items
    ]
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["ckan_data.json"]  # no temporary left
