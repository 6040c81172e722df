"""The container files: Docker cannot run here, so what can be checked without it is — the
compose file's shape, the Dockerfile's promises, and the health check command itself, run
against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from priorizer.config import Settings
from tests.support.priorizer_server import PriorizerServer, free_port

ROOT = Path(__file__).parents[2]
SETTING_NAMES = {str(field.validation_alias) for field in Settings.model_fields.values()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_declares_priorizer_and_postgresql_with_health_checks(compose):
    services = compose["services"]
    assert set(services) == {"db", "priorizer"}
    assert services["db"]["image"].startswith("postgres:")
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
    app = services["priorizer"]
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert app["ports"] == ["8002:8002"]
    assert app["environment"]["DATABASE_URL"].startswith("postgresql://priorizer:")
    assert "@db:5432/priorizer" in app["environment"]["DATABASE_URL"]


def test_compose_keeps_data_in_named_volumes(compose):
    volumes = set(compose["volumes"])
    mounted = {
        entry.split(":", 1)[0]
        for service in compose["services"].values()
        for entry in service.get("volumes", [])
    }
    assert mounted == volumes == {"pgdata", "priorizer-data"}


def test_compose_configures_priorizer_only_by_variables_it_reads(compose):
    """A misspelt variable would be silently ignored by the service: every one must be ours."""
    environment = compose["services"]["priorizer"]["environment"]
    assert set(environment) <= SETTING_NAMES, set(environment) - SETTING_NAMES
    assert Settings(
        **{k: v.replace("${POSTGRES_PASSWORD:-priorizer}", "x") for k, v in environment.items()}
    )


def test_dockerfile_runs_as_an_unprivileged_user_on_port_8002():
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "EXPOSE 8002" in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert lines[-1] == 'CMD ["priorizer", "serve"]'
    assert any("--constraint requirements.lock" in line for line in lines)


def _health_command(compose: dict[str, Any], port: int) -> list[str]:
    test = compose["services"]["priorizer"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    return [sys.executable, *(arg.replace("8002", str(port)) for arg in test[2:])]


def test_the_health_check_command_passes_on_a_healthy_server_and_fails_without_one(
    compose, tmp_path: Path
):
    with PriorizerServer(tmp_path, args=["--demo"]) as server:
        healthy = subprocess.run(_health_command(compose, server.port), capture_output=True)
    nobody = subprocess.run(_health_command(compose, free_port()), capture_output=True)

    assert healthy.returncode == 0, healthy.stderr
    assert nobody.returncode != 0
