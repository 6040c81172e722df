"""The node agent runs on volunteer machines: it must not load the server's code."""

from __future__ import annotations

import subprocess
import sys


def test_the_agent_imports_none_of_the_server_s_packages() -> None:
    script = (
        "import sys, priorizer.agent.cli, priorizer.agent.runner\n"
        "print(sorted(m for m in sys.modules if m.startswith('priorizer.')"
        " and not m.startswith('priorizer.agent')))\n"
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'pydantic') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout
