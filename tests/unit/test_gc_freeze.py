"""The server's process leaves its startup objects out of garbage collections
(`web.app.freeze_startup_objects`); an app built for the tests does not. Each case runs in a
process of its own: freezing is process-wide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import gc, json
from priorizer.web import app as web_app
from priorizer.config import Settings
before = gc.get_freeze_count()
if {serve}:
    web_app.app_from_environment()
else:
    web_app.create_app(Settings())
# What a full collection walks now: the objects it still tracks.
print(json.dumps({{"frozen": gc.get_freeze_count() - before, "tracked": len(gc.get_objects())}}))
"""


def probe(tmp_path: Path, *, serve: bool) -> dict[str, int]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'gc.sqlite3'}",
        "DATA_DIRECTORY": str(tmp_path),
        "PRIORIZER_RUN_SCHEDULER": "false",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(serve=serve)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("serve", [True, False], ids=["serve", "create_app"])
def test_only_the_server_process_freezes_its_startup_objects(tmp_path: Path, serve: bool) -> None:
    figures = probe(tmp_path, serve=serve)
    if serve:
        # The modules, classes and the app: tens of thousands of objects, and after the
        # freeze, a small fraction of that left for each full collection to walk.
        assert figures["frozen"] > 50_000
        assert figures["tracked"] < figures["frozen"] / 10
    else:
        assert figures["frozen"] == 0
        assert figures["tracked"] > 50_000
