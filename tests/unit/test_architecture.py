"""The layering rules of pyproject.toml's import-linter contracts (docs/architecture.md) hold on
this tree, and a module that breaks one makes `lint-imports` fail naming the rule. The planted
imports run on a copy of the package, never on the tree itself."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(source_root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / "src" / "priorizer", root / "priorizer")
    return root


def plant(copy: Path, module: str, line: str) -> Path:
    path = copy / Path(*module.split(".")).with_suffix(".py")
    original = path.read_text()
    path.write_text(original + f"\n{line}\n")
    return path


def test_the_tree_keeps_every_contract() -> None:
    result = lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        # The queue core imports no domain.
        ("priorizer.queue.sql", "import priorizer.catalog.repo", "Layers: entry points"),
        # The catalog does not know allocation (it sits below it).
        ("priorizer.catalog.repo", "import priorizer.allocation.service", "Layers: entry points"),
        # Storage imports no domain.
        ("priorizer.db.database", "import priorizer.allocation.picks", "Layers: entry points"),
        # A domain router does not reach the app factory.
        ("priorizer.node.api", "import priorizer.web.app", "Layers: entry points"),
        # Within a domain, a service does not call its jobs (they own transactions).
        ("priorizer.harvest.service", "import priorizer.harvest.jobs", "Within a domain"),
        # The race-prone statements do not call the use cases above them.
        ("priorizer.allocation.claims", "import priorizer.allocation.service", "Allocation:"),
        # What every route receives imports no domain.
        ("priorizer.web.deps", "import priorizer.harvest.service", "What every route receives"),
        # The node agent knows the server only by HTTP.
        ("priorizer.agent.client", "import priorizer.db", "The node agent knows"),
    ],
)
def test_an_import_against_a_rule_fails_naming_it(
    package_copy: Path, module: str, line: str, rule: str
) -> None:
    path = plant(package_copy, module, line)
    original = path.read_text().removesuffix(f"\n{line}\n")
    try:
        result = lint(package_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert rule in broken, result.stdout


TRANSACTIONS = {"read", "write", "background_write", "snapshot", "exclusive", "run_write"}
SOURCE = ROOT / "src" / "priorizer"


# Outside routes (`api.py`) and jobs (`jobs.py`), the harvest's other job modules: the entry to
# any harvest, the data.json run, and the removal alert a finished run sends.
HARVEST_JOBS = {"dispatch.py", "dcat_run.py", "alerts.py"}
ENTRY_PACKAGES = {"web", "cli", "db", "agent", "migrations", "queue", "simulate"}


def test_only_routes_and_jobs_open_transactions() -> None:
    """A service, a repo, any other domain module takes a session; routes, jobs and entry
    points open transactions (docs/architecture.md)."""
    opened = []
    for path in sorted(SOURCE.glob("*/*.py")):
        package = path.parent.name
        if package in ENTRY_PACKAGES or path.name in ("api.py", "jobs.py"):
            continue
        if package == "harvest" and path.name in HARVEST_JOBS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in TRANSACTIONS
                and isinstance(node.func.value, ast.Name | ast.Attribute)
                and ast.unparse(node.func.value).split(".")[-1] in ("database", "db")
            ):
                opened.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}")
    assert opened == []


def test_no_module_is_over_400_lines() -> None:
    """Each module holds one subject and fits in one's head (migrations aside)."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in SOURCE.rglob("*.py")
        if "migrations" not in path.parts and (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}
