"""`priorizer simulate` as an operator runs it: in-process, side by side, and against a real
server over HTTP, which must give the very figures of the in-process run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow

# As short of disk as the scenario: the catalog is 1.6 times the disks.
SMALL = ["--nodes", "10", "--assets", "2000", "--seed", "4"]
# What differs between two runs of one scenario: the time taken, and where it ran.
CIRCUMSTANCES = ("seconds", "database")


def simulate(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["simulate", *args, "--json"], env, timeout=180)
    assert result.returncode == 0, describe(result)
    return json.loads(result.stdout)


def figures(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in CIRCUMSTANCES}


def operator_env(tmp_path: Path) -> dict[str, str]:
    """An operator's data directory, with a seed file a first start would import."""
    data = tmp_path / "operator"
    data.mkdir()
    (data / "ckan_data.json").write_text('[{"id": "theirs", "url": "https://x.org/t"}]')
    return {"DATA_DIRECTORY": str(data)}


def test_a_run_prints_the_measures_and_leaves_the_operators_data_alone(tmp_path):
    env = operator_env(tmp_path)
    result = run_cli(["simulate", *SMALL], env, timeout=180)
    assert result.returncode == 0, describe(result)
    for label in ("coverage", "top redundancy", "pooled one-copy upper bound", "copies per asset"):
        assert label in result.stdout
    assert sorted(p.name for p in (tmp_path / "operator").iterdir()) == ["ckan_data.json"]

    run = simulate(SMALL, env)["runs"][0]
    assert 0 < run["coverage"] <= run["upper_bound"] <= 1
    assert run["assets"] == 2000
    assert run["counts"]["requests"] > 10
    assert sum(run["copies_histogram"].values()) == 2000
    assert [row["priority"] for row in run["per_priority"]] == sorted(
        {row["priority"] for row in run["per_priority"]}, reverse=True
    )


def test_compare_runs_the_scenario_under_each_setting_side_by_side(tmp_path):
    env = operator_env(tmp_path)
    report = simulate([*SMALL, "--compare", "COPY_PENALTY=0,6"], env)
    by_penalty = {run["settings"]["COPY_PENALTY"]: run for run in report["runs"]}
    assert set(by_penalty) == {"0", "6"}
    # No penalty: every copy of the top data first; a large one: first copies of all first.
    assert by_penalty["0"]["top_redundancy"] > by_penalty["6"]["top_redundancy"]
    assert by_penalty["0"]["coverage"] < by_penalty["6"]["coverage"]

    text = run_cli(["simulate", *SMALL, "--compare", "COPY_PENALTY=0,6"], env, timeout=180)
    assert "COPY_PENALTY=0" in text.stdout and "COPY_PENALTY=6" in text.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--compare", "NO_SUCH_SETTING=1,2"], "NO_SUCH_SETTING"),
        (["--set", "COPY_PENALTY=-1"], "COPY_PENALTY"),
        (["--set", "COPY_PENALTY=1,2"], "--compare"),
        (["--nodes", "0"], "fleet.nodes"),
        (["--vanish", "2"], "fleet.vanish_share"),
        (["--min-free-gb", "9", "--max-free-gb", "3"], "min_free_gb"),
        (["--scenario", "/nonexistent/s.toml"], "cannot read"),
        (["--catalog", "/nonexistent/ckan_data.json"], "cannot be read"),
        (["--catalog", "c.json", "--url", "http://127.0.0.1:9"], "in-process"),
        (["--url", "http://127.0.0.1:9", "--compare", "COPY_PENALTY=0,1"], "in-process only"),
        (["--url", "http://127.0.0.1:9", "--vanish", "0.1"], "without --url"),
    ],
)
def test_bad_input_exits_2_naming_what_is_wrong(tmp_path, args, named):
    result = run_cli(["simulate", *args], operator_env(tmp_path))
    assert result.returncode == 2, describe(result)
    assert named in result.stderr, describe(result)


def test_a_server_loaded_with_the_catalog_gives_the_same_figures_over_http(tmp_path):
    env = operator_env(tmp_path)
    server = PriorizerServer(tmp_path)
    catalog = server.workdir / "data" / "ckan_data.json"  # imported at its first start
    written = run_cli(["simulate", *SMALL, "--write-catalog", str(catalog)], env)
    assert written.returncode == 0, describe(written)
    assert len(json.loads(catalog.read_text(encoding="utf-8"))) == 2000

    in_process = simulate(SMALL, env)
    with server:
        over_http = simulate([*SMALL, "--url", server.base_url], env)
        again = run_cli(["simulate", *SMALL, "--url", server.base_url], env)
        with server.client() as client:
            status = client.get("/status").json()

    assert figures(over_http["runs"][0]) == figures(in_process["runs"][0])
    assert over_http["driver"] == f"HTTP ({server.base_url})"
    # The simulated fleet's copies are the server's records too.
    assert status["copies"] == in_process["runs"][0]["copies"]
    # A server that already has a fleet is refused: its state would skew the figures.
    assert again.returncode == 1, describe(again)
    assert "already has 10 nodes" in again.stderr


def test_a_server_that_does_not_answer_is_named(tmp_path):
    result = run_cli(["simulate", "--url", "http://127.0.0.1:9"], operator_env(tmp_path))
    assert result.returncode == 1, describe(result)
    assert "http://127.0.0.1:9" in result.stderr
