"""`priorizer harvest`, `import-ckan` and `rescore` as an operator runs them: real processes
against a real CKAN-compatible HTTP server (tests/support/ckan_portal.py), into real databases."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from priorizer.db import Database
from tests.support.ckan_data import FIXTURES, hostile_catalog, load_fixture, package, resource
from tests.support.ckan_portal import CkanPortal
from tests.support.factories import table_snapshot
from tests.support.priorizer_server import (
    PRIORIZER,
    PriorizerServer,
    clean_environment,
    describe,
    run_cli,
)

pytestmark = pytest.mark.slow

# The recorded answers that hold packages, and how many each holds.
PACKAGE_FIXTURES = {
    "envidat_current_package_list_with_resources_2021.json.gz": 354,
    "datagov_package_search_group_agriculture_2020.json": 18,
    "envidat_package_search_2026.json": 2,
    "envidat_package_show_2026.json": 1,
    "datagov_bare_package_list_2015.json": 3,
    "ckan_package_show_datagov_copy.json": 1,
}
DEFAULT_POLICY = Path(__file__).parents[2] / "src" / "priorizer" / "scoring" / "default_policy.toml"
RESUMED_NOTE = "the next harvest of this source continues"
WAIT = 30.0  # seconds: the bound of every wait for another process


def cli_env(tmp_path: Path, db_url: str, **extra: str) -> dict[str, str]:
    return {"DATA_DIRECTORY": str(tmp_path / "data"), "DATABASE_URL": db_url, **extra}


def last_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a command prints on its last stdout line."""
    lines = result.stdout.strip().splitlines()
    assert lines, describe(result)
    return json.loads(lines[-1])


def ok(args: list[str], env: dict[str, str]) -> Any:
    result = run_cli(args, env)
    assert result.returncode == 0, describe(result)
    return last_json(result)


def rows(db_url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def dataset_ids(db_url: str) -> set[str]:
    return {row.id for row in rows(db_url, "SELECT id FROM datasets")}


def runs(db_url: str) -> list[Any]:
    return rows(db_url, "SELECT * FROM harvest_runs ORDER BY id")


def snapshot(db_url: str) -> dict[str, list[tuple[Any, ...]]]:
    database = Database(db_url)
    try:
        return table_snapshot(database)
    finally:
        database.dispose()


def wait_until(condition: Any, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def portal() -> Iterator[CkanPortal]:
    with CkanPortal(hostile_catalog(120, seed=5)) as running:
        yield running


# --- harvest ------------------------------------------------------------------------------------


def test_harvest_prints_the_run_and_the_catalog_then_holds_the_portal(
    db_url: str, tmp_path: Path, portal: CkanPortal
) -> None:
    env = cli_env(tmp_path, db_url, COLUMNS="120")
    packages = list(portal.datasets.values())

    result = run_cli(["harvest", portal.base_url, "--rows", "25", "--no-progress"], env)
    assert result.returncode == 0, describe(result)
    outcome = last_json(result)
    assert outcome["state"] == "ok" and outcome["error"] is None, outcome
    assert outcome["datasets"] == outcome["expected"] == len(packages)
    assert outcome["pages"] == 5  # 120 datasets, 25 a page
    assert outcome["removed_upstream"] == 0
    assert outcome["assets_created"] > 0
    # The hostile catalog's unusable resources are counted by why, never silently dropped.
    skipped = outcome["skipped_resources"]
    assert {"no URL", "mailto: URL", "relative URL", "javascript: URL"} <= set(skipped), skipped
    resources = sum(len(p["resources"]) for p in packages)
    written = outcome["assets_created"] + outcome["assets_updated"]
    assert written + outcome["shared_urls"] + sum(skipped.values()) == resources, outcome
    assert not re.search(r"\d+/\d+", result.stderr), "no progress bar with --no-progress"

    status = run_cli(["status", "--json"], env)  # exits 1: maintenance never ran here
    assert status.returncode in (0, 1) and status.stdout.startswith("{"), describe(status)
    figures = json.loads(status.stdout)
    assert figures["datasets"] == len(packages)
    assert figures["assets"] == outcome["assets_created"]
    assert figures["harvest"]["id"] == outcome["id"]
    assert figures["harvest"]["state"] == "ok"
    assert figures["harvest"]["datasets"] == len(packages)
    assert dataset_ids(db_url) == set(portal.datasets)
    assert rows(db_url, "SELECT count(*) AS n FROM assets")[0].n == outcome["assets_created"]

    # Again, with the progress bar (the default): it shows the counts; nothing new is created.
    again = run_cli(["harvest", portal.base_url, "--rows", "25"], env)
    assert again.returncode == 0, describe(again)
    second = last_json(again)
    assert second["id"] != outcome["id"] and second["state"] == "ok"
    assert second["assets_created"] == 0 and second["datasets"] == len(packages)
    assert f"{len(packages)}/{len(packages)}" in again.stderr, describe(again)
    assert "100%" in again.stderr and "datasets/s" in again.stderr, describe(again)
    assert f"{written} assets" in again.stderr, describe(again)
    assert dataset_ids(db_url) == set(portal.datasets)


def test_a_portal_down_for_good_fails_the_harvest_and_records_it_interrupted(
    db_url: str, tmp_path: Path, portal: CkanPortal
) -> None:
    env = cli_env(tmp_path, db_url)
    armed = {"done": False}

    def go_down(params: dict) -> None:
        if not armed["done"] and params.get("fq"):  # the second page's request
            armed["done"] = True
            portal.fail_next(1000, status=503)

    portal.on_search = go_down
    started = time.monotonic()
    result = run_cli(["harvest", portal.base_url, "--rows", "30", "--attempts", "2"], env)
    assert time.monotonic() - started < WAIT
    assert result.returncode == 1, describe(result)
    assert "error: package_search failed 2 times" in result.stderr, describe(result)
    assert "HTTP 503" in result.stderr and RESUMED_NOTE in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert result.stdout.strip() == "", describe(result)
    assert len(portal.searches()) == 3  # the first page, then two tries of the second

    [run] = runs(db_url)
    assert run.state == "interrupted" and run.finished_at is None
    assert "503" in run.error and "package_search" in run.error, run.error
    assert run.pages == 1 and len(dataset_ids(db_url)) == run.datasets == 30


# A child inherits an ignored SIGINT, and Python leaves it ignored. A shell without job control
# starts a background job so (`pytest &` in a script: then every process pytest starts ignored
# Ctrl-C, and the tests below timed out in such runs only); an interactive shell starts a
# foreground command with SIGINT at its default. So the command is started as a shell would,
# whatever this process was started with: SIGINT set in the child, then kept across its exec.
_EXEC_WITH_SIGINT = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, getattr(signal, sys.argv[1])); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


def started_with_sigint(disposition: str, command: list[str]) -> list[str]:
    """`command` as it runs with SIGINT at `disposition`: "SIG_DFL" (a foreground command) or
    "SIG_IGN" (a background job of a script). The same process: `command` replaces the
    Python that sets it."""
    assert disposition in ("SIG_DFL", "SIG_IGN"), disposition
    return [sys.executable, "-c", _EXEC_WITH_SIGINT, disposition, *command]


def ignores_sigint(pid: int) -> bool:
    """Whether the process ignores SIGINT (its SigIgn mask, from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    raise AssertionError(f"no SigIgn in /proc/{pid}/status")


class StalledHarvest:
    """`priorizer harvest URL --rows 20` in a session of its own (as a shell runs a command in
    its own process group), stopped while it waits for a third page the portal stalls. It starts
    with SIGINT at its default, as a foreground command, unless `sigint` says "SIG_IGN"."""

    def __init__(
        self,
        portal: CkanPortal,
        env: dict[str, str],
        db_url: str,
        *,
        sigint: str = "SIG_DFL",
    ) -> None:
        self.portal, self.db_url = portal, db_url
        self.third_asked = threading.Event()
        self.calls = 0
        portal.on_search = self._stall_third
        command = [str(PRIORIZER), "harvest", portal.base_url, "--rows", "20"]
        self.process = subprocess.Popen(
            started_with_sigint(sigint, command),
            env=clean_environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.group = self.process.pid

    def _stall_third(self, _params: dict) -> None:
        self.calls += 1
        if self.calls == 3:
            self.portal.stall_next(1, seconds=60)  # this very request: until the portal stops
            self.third_asked.set()

    def wait_stalled(self) -> None:
        assert self.third_asked.wait(WAIT), "the harvest never asked for its third page"
        # Pages 1 and 2 are committed (the third is fetched while the second is written):
        # the harvest now waits for the stalled request.
        wait_until(lambda: [r.pages for r in runs(self.db_url)] == [2], "two pages committed")

    def finish(self, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        """Its exit and output; SIGKILL to its whole group if it does not exit in time."""
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            stdout, stderr = self.process.communicate()
            stderr += f"\n[test: still running {timeout}s later: killed]"
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, stdout, stderr
        )

    def kill_group(self) -> None:
        """SIGKILL to the command and every process it started (its group)."""
        with contextlib.suppress(ProcessLookupError):  # none left
            os.killpg(self.group, signal.SIGKILL)

    def __enter__(self) -> StalledHarvest:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill_group()  # whatever the test found, it leaves no process behind
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def group_members(group: int) -> list[int]:
    """The live processes of a process group (zombies aside), from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def left_behind(group: int, timeout: float = 5.0) -> dict[int, str]:
    """The processes of the group still running `timeout` seconds from now (or none, as soon
    as they are all gone), by pid, with their command lines."""
    deadline = time.monotonic() + timeout
    while (members := group_members(group)) and time.monotonic() < deadline:
        time.sleep(0.1)
    commands = {}
    for pid in members:
        with contextlib.suppress(OSError):
            commands[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:150]
    return {pid: command.decode(errors="replace") for pid, command in commands.items()}


def test_ctrl_c_stops_the_harvest_and_the_next_one_continues_it(
    db_url: str, tmp_path: Path, portal: CkanPortal
) -> None:
    env = cli_env(tmp_path, db_url)
    with StalledHarvest(portal, env, db_url) as harvest:
        harvest.wait_stalled()
        assert not ignores_sigint(harvest.process.pid)  # a foreground command's
        os.killpg(harvest.group, signal.SIGINT)  # Ctrl-C: the terminal signals the group
        interrupted = harvest.finish()
        assert interrupted.returncode == 130, describe(interrupted)
        assert "interrupted" in interrupted.stderr, describe(interrupted)
        assert RESUMED_NOTE in interrupted.stderr, describe(interrupted)
        assert "Traceback" not in interrupted.stderr, describe(interrupted)
        assert left_behind(harvest.group) == {}  # its worker processes are gone too

    [stopped] = runs(db_url)
    assert (stopped.state, stopped.error, stopped.pages) == ("interrupted", "interrupted", 2)
    assert stopped.cursor_modified is not None
    kept = dataset_ids(db_url)
    assert len(kept) == stopped.datasets == 40  # both pages whole, nothing half-written

    asked: list[dict] = []
    portal.on_search = asked.append
    outcome = ok(["harvest", portal.base_url, "--rows", "20", "--no-progress"], env)
    assert outcome["id"] == stopped.id and outcome["state"] == "ok", outcome
    assert outcome["datasets"] == len(portal.datasets)  # nothing listed twice, nothing missed
    assert dataset_ids(db_url) == set(portal.datasets)
    # It continued from its cursor instead of starting over.
    assert "metadata_modified:[" in asked[0].get("fq", ""), asked[0]
    assert stopped.cursor_modified in asked[0]["fq"], (stopped.cursor_modified, asked[0])
    assert [r.state for r in runs(db_url)] == ["ok"]


def test_sigint_to_the_harvest_process_alone_stops_it_promptly(
    tmp_path: Path, portal: CkanPortal
) -> None:
    db_url = f"sqlite:///{tmp_path / 'priorizer.sqlite3'}"
    with StalledHarvest(portal, cli_env(tmp_path, db_url), db_url) as harvest:
        harvest.wait_stalled()
        assert not ignores_sigint(harvest.process.pid)  # a foreground command's
        harvest.process.send_signal(signal.SIGINT)
        result = harvest.finish(timeout=5)
    assert result.returncode == 130, describe(result)
    assert RESUMED_NOTE in result.stderr, describe(result)


def test_the_harvests_here_start_as_a_shell_starts_them_whatever_pytest_ignores() -> None:
    """Regression: started from a process that ignores SIGINT (pytest run as `pytest &` in a
    script), a harvest inherited that, and the Ctrl-C tests above timed out in such runs only.
    Here the parent ignores SIGINT as such a pytest would; pytest's own handler is left alone."""
    handler = signal.getsignal(signal.SIGINT)
    probe = [
        sys.executable,
        "-c",
        "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)",
    ]
    ignoring_parent = [
        sys.executable,
        "-c",
        "import signal, subprocess, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "sys.exit(subprocess.run(sys.argv[1:]).returncode)",
    ]

    def handles_sigint(command: list[str]) -> str:
        result = subprocess.run(
            [*ignoring_parent, *command], capture_output=True, text=True, timeout=WAIT
        )
        assert result.returncode == 0, describe(result)
        return result.stdout.strip()

    assert handles_sigint(probe) == "False"  # a plain child ignores it too
    assert handles_sigint(started_with_sigint("SIG_DFL", probe)) == "True"
    assert handles_sigint(started_with_sigint("SIG_IGN", probe)) == "False"
    assert signal.getsignal(signal.SIGINT) == handler


def test_a_harvest_started_as_a_background_job_keeps_ignoring_sigint(
    tmp_path: Path, portal: CkanPortal
) -> None:
    """A shell without job control starts `priorizer harvest URL &` with SIGINT ignored, so that
    a Ctrl-C meant for the command in the foreground spares it. The harvest leaves it ignored,
    as Python does (SIGTERM still stops it: `test_a_killed_harvest_leaves_no_process_behind`)."""
    db_url = f"sqlite:///{tmp_path / 'priorizer.sqlite3'}"
    env = cli_env(tmp_path, db_url)
    with StalledHarvest(portal, env, db_url, sigint="SIG_IGN") as harvest:
        harvest.wait_stalled()
        assert ignores_sigint(harvest.process.pid)
        os.killpg(harvest.group, signal.SIGINT)
        time.sleep(2)
        assert harvest.process.poll() is None, "a background job stopped by SIGINT"
        assert [r.state for r in runs(db_url)] == ["running"]


@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_harvest_leaves_no_process_behind(
    tmp_path: Path, portal: CkanPortal, kill: signal.Signals
) -> None:
    db_url = f"sqlite:///{tmp_path / 'priorizer.sqlite3'}"
    env = cli_env(tmp_path, db_url)
    with StalledHarvest(portal, env, db_url) as harvest:
        harvest.wait_stalled()
        assert len(group_members(harvest.group)) > 1  # the command, and its reader's processes
        harvest.process.send_signal(kill)
        harvest.process.wait(timeout=WAIT)
        assert left_behind(harvest.group) == {}, f"still running 5 s after {kill.name}"


def descendants(pid: int) -> set[int]:
    """The live processes `pid` started, and theirs, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                if fields[0] != "Z":
                    parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    wanted = {pid}
    while wanted:
        wanted = {child for child, parent in parents.items() if parent in wanted} - found
        found |= wanted
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z":
                living.add(pid)
    return living


def test_serve_stopped_while_it_harvests_leaves_no_process_behind(
    tmp_path: Path, portal: CkanPortal
) -> None:
    from priorizer.web.app import HARVEST_STOP_WAIT_SECONDS

    stalled = threading.Event()

    def stall_second(_params: dict) -> None:
        if len(portal.searches()) == 1 and not stalled.is_set():
            portal.stall_next(1, seconds=60)
            stalled.set()

    portal.on_search = stall_second
    server = PriorizerServer(tmp_path, {"PRIORIZER_RUN_SCHEDULER": "false"})
    helpers: set[int] = set()
    try:
        with server, server.client() as client:
            response = client.post("/harvest", json={"url": portal.base_url})
            assert response.status_code == 202, response.text
            assert stalled.wait(WAIT), "the harvest never asked for its second page"
            assert server.process is not None
            helpers = descendants(server.process.pid)
            assert helpers, "the harvest reads in worker processes"
            server.stop(timeout=HARVEST_STOP_WAIT_SECONDS + 5)
        assert server.stopped_cleanly, f"exit {server.returncode}\n{server.logs()}"
        # The reader notices its harvest's process is gone within a second; the helpers it
        # kept alive (forkserver, resource tracker) follow it.
        deadline = time.monotonic() + 5
        while alive(helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert alive(helpers) == set()
    finally:
        for pid in alive(helpers):  # the processes this test's server started
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


# --- import-ckan --------------------------------------------------------------------------------


def fixture_ids(names: list[str]) -> set[str]:
    """The ids of the packages in recorded answers, read without Priorizer's code."""
    ids: set[str] = set()
    for name in names:
        document = load_fixture(name)
        if isinstance(document, dict) and "result" in document:
            document = document["result"]
        if isinstance(document, dict) and "results" in document:
            document = document["results"]
        packages = document if isinstance(document, list) else [document]
        ids |= {p["id"] for p in packages}
    return ids


def test_import_ckan_stores_the_recorded_answers(db_url: str, tmp_path: Path) -> None:
    env = cli_env(tmp_path, db_url)
    names = sorted(PACKAGE_FIXTURES)
    wanted = fixture_ids(names)
    assert len(wanted) == sum(PACKAGE_FIXTURES.values())  # no id in two files

    outcome = ok(["import-ckan", *(str(FIXTURES / name) for name in names)], env)
    assert outcome["state"] == "ok" and outcome["datasets"] == len(wanted), outcome
    assert outcome["source"] == "file:" + ",".join(names)
    assert outcome["removed_upstream"] is None  # a file need not list a whole source
    assert dataset_ids(db_url) == wanted
    assets = rows(db_url, "SELECT id, dataset_id, base_priority FROM assets")
    assert len(assets) == outcome["assets_created"] > 0
    assert {a.dataset_id for a in assets} <= wanted
    assert all(1 <= a.base_priority <= 10 for a in assets)
    assert [r.state for r in runs(db_url)] == ["ok"]


def test_import_ckan_with_one_malformed_file_names_it_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, db_url)
    good = [str(FIXTURES / "envidat_package_search_2026.json")]
    text_of = (FIXTURES / "datagov_bare_package_list_2015.json").read_text(encoding="utf-8")
    broken = tmp_path / "cut-short.json"
    broken.write_text(text_of[: len(text_of) // 2], encoding="utf-8")
    later = str(FIXTURES / "envidat_package_show_2026.json")
    before = snapshot(db_url)

    result = run_cli(["import-ckan", *good, str(broken), later], env)
    assert result.returncode != 0, describe(result)
    assert "cut-short.json" in result.stderr and "not valid JSON" in result.stderr, describe(result)
    assert "Traceback" not in result.stderr, describe(result)
    assert snapshot(db_url) == before
    assert dataset_ids(db_url) == set()
    assert rows(db_url, "SELECT count(*) AS n FROM assets")[0].n == 0
    assert runs(db_url) == []


@pytest.mark.parametrize(
    "name",
    [
        "envidat_organization_list_2026.json",  # a list, but of organizations
        "envidat_organization_show_2026.json",
        "ckan_package_show_404_error.json",
    ],
)
def test_import_ckan_refuses_a_file_without_packages(
    db_url: str, tmp_path: Path, name: str
) -> None:
    env = cli_env(tmp_path, db_url)
    good = str(FIXTURES / "envidat_package_search_2026.json")
    result = run_cli(["import-ckan", good, str(FIXTURES / name)], env)
    assert result.returncode != 0, describe(result)
    assert name in result.stderr and "no CKAN packages" in result.stderr, describe(result)
    assert dataset_ids(db_url) == set() and runs(db_url) == []


# --- rescore ------------------------------------------------------------------------------------


def scored_catalog() -> list[dict]:
    """Datasets of three organizations whose priorities a policy can move either way."""
    packages = []
    for i, organization in enumerate(["usgs-gov", "noaa-gov", "wsl"] * 3):
        packages.append(
            package(
                f"ds-{i}",
                title=f"Stream gauges {i}",
                organization=organization,
                modified="2025-12-01T00:00:00",
                resources=[
                    resource(f"https://data.example.org/{i}/small.csv", size=1024),
                    resource(f"https://data.example.org/{i}/unknown.nc"),
                ],
            )
        )
    return packages


def priorities(db_url: str) -> dict[str, tuple[str, int]]:
    sql = (
        "SELECT a.id, d.organization, a.base_priority FROM assets a "
        "JOIN datasets d ON d.id = a.dataset_id"
    )
    return {row.id: (row.organization, row.base_priority) for row in rows(db_url, sql)}


BAD_POLICIES = [  # (the file, what the error must name)
    ("[keywords]\ncap = 3.0\nbonus = 2.0\n", "keywords.bonus: "),  # an unknown setting
    ('base = 4.0\n[organizations]\n"wsl" = "lots"\n', "organizations.wsl: "),
    ("base = 40\n", "toml: base: "),  # out of range
    ("base = \n", "not valid TOML"),
]


def test_rescore_applies_a_custom_policy_file_and_refuses_an_invalid_one(
    db_url: str, tmp_path: Path
) -> None:
    env = cli_env(tmp_path, db_url)
    with CkanPortal(scored_catalog()) as portal:
        ok(["harvest", portal.base_url, "--no-progress"], env)
    before = priorities(db_url)
    assert len(before) == 18
    # The default policy: base 4, usgs-gov +1, and +0.5 for a small file (5.5: rounded up).
    assert {p for org, p in before.values() if org == "usgs-gov"} == {5, 6}

    # Rescoring with the policy the catalog was scored with changes nothing.
    assert ok(["rescore"], env) == {"scored": 18, "changed": 0, "manual": 0}

    policy_text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert '"usgs-gov" = 1.0' in policy_text
    custom = tmp_path / "custom_policy.toml"
    custom.write_text(
        policy_text.replace('name = "default"', 'name = "usgs first"').replace(
            '"usgs-gov" = 1.0', '"usgs-gov" = 6.0'
        ),
        encoding="utf-8",
    )
    report = ok(["rescore"], {**env, "SCORING_POLICY_FILE": str(custom)})
    usgs = {asset for asset, (org, _) in before.items() if org == "usgs-gov"}
    assert report == {"scored": 18, "changed": len(usgs), "manual": 0}
    after = priorities(db_url)
    assert {after[a][1] for a in usgs} == {10}  # 4 + 6 (+ 0.5): kept within 1-10
    assert {a: after[a] for a in after if a not in usgs} == {
        a: before[a] for a in before if a not in usgs
    }

    # A policy file that is not valid is refused, naming it and what is wrong; nothing moves.
    bad = tmp_path / "bad_policy.toml"
    for policy, problem in BAD_POLICIES:
        bad.write_text(policy, encoding="utf-8")
        result = run_cli(["rescore"], {**env, "SCORING_POLICY_FILE": str(bad)})
        assert result.returncode != 0, describe(result)
        assert str(bad) in result.stderr and problem in result.stderr, describe(result)
        assert "Traceback" not in result.stderr, describe(result)
        assert priorities(db_url) == after
