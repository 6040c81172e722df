"""`priorizer serve` listens beyond loopback only with an admin token (or PRIORIZER_INSECURE)."""

from __future__ import annotations

import pytest

from tests.support.priorizer_server import PriorizerServer, clean_environment, describe, run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_serve_beyond_loopback_without_a_token_exits_naming_the_setting(tmp_path, host):
    result = run_cli(
        ["serve"],
        clean_environment({"DATA_DIRECTORY": str(tmp_path), "PRIORIZER_HOST": host}),
        timeout=30,
    )
    assert result.returncode == 2, describe(result)
    assert "PRIORIZER_ADMIN_TOKEN" in result.stderr and host in result.stderr
    assert "PRIORIZER_INSECURE" in result.stderr
    assert not (tmp_path / "priorizer.sqlite3").exists()  # refused before touching anything


@pytest.mark.parametrize(
    "env",
    [{"PRIORIZER_ADMIN_TOKEN": "an-admin-token-0123456789"}, {"PRIORIZER_INSECURE": "1"}],
    ids=["with a token", "insecure on purpose"],
)
def test_serve_beyond_loopback_with_a_token_or_on_purpose_starts(tmp_path, env):
    server = PriorizerServer(tmp_path, {"PRIORIZER_HOST": "0.0.0.0", **env})
    with server, server.client() as client:  # the server answers on 127.0.0.1 too
        assert client.get("/health").status_code == 200
