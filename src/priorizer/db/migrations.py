"""The schema's migrations (Alembic, `priorizer/migrations`), run from code. The migrations'
environment also brings PostgreSQL's server-side functions to this code's version."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (safe to call on every start), and
    the server-side functions to this code's version (PostgreSQL)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")  # `migrations/env.py` installs the functions


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
