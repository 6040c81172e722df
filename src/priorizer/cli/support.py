"""What every `priorizer` command does first: read and check the settings, open the database
(to write, or only to read), and report a failure in one line."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from priorizer import logs
from priorizer.config import Settings, describe_settings_error
from priorizer.errors import PriorizerError

if TYPE_CHECKING:
    from priorizer.db import Database
    from priorizer.queue.policy import QueuePolicy


def load_settings(**overrides: object) -> Settings:
    """The settings (the environment's, with the command's options over them), and logging
    set up by them; every bad one on stderr, and exit 2."""
    try:
        settings = Settings.of(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        typer.echo(describe_settings_error(error), err=True)
        raise typer.Exit(2) from error
    logs.configure(settings)
    return settings


def argument(name: str) -> Any:
    """A positional argument, named in capitals and described in its command's text (Typer
    would list it again, tagged with its Python type)."""
    return typer.Argument(metavar=name, hidden=True, show_default=False)


def fail(error: PriorizerError) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)


def open_to_write(settings: Settings) -> tuple[Database, QueuePolicy]:
    """The database, migrated (quietly); one line and exit 1 when it cannot be opened."""
    from priorizer.startup import open_for_command

    try:
        return open_for_command(settings)
    except PriorizerError as error:
        raise fail(error) from error


def check_reachable(settings: Settings) -> None:
    """A PostgreSQL server that does not answer is one line naming DATABASE_URL, before a client
    tool says so at length."""
    from priorizer.db import sqlite_path
    from priorizer.startup import schema_revision

    if sqlite_path(settings.sqlalchemy_url) is None:
        schema_revision(settings)


def open_to_read(settings: Settings) -> Database:
    """The database as it is, for commands that only read: never created nor migrated."""
    from priorizer import startup

    try:
        return startup.open_to_read(settings)
    except PriorizerError as error:
        raise fail(error) from error
