"""What routes receive: the database, the settings and the clock, from the app's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from priorizer.allocation.policy import QueuePolicy
from priorizer.config import Settings
from priorizer.db import Database
from priorizer.maintenance.service import MaintenancePolicy


def _database(request: Request) -> Database:
    return request.app.state.database


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def _queue(request: Request) -> QueuePolicy:
    return request.app.state.queue


def _maintenance(request: Request) -> MaintenancePolicy:
    return request.app.state.maintenance


DbDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
NowDep = Annotated[datetime, Depends(_now)]
QueueDep = Annotated[QueuePolicy, Depends(_queue)]
MaintenanceDep = Annotated[MaintenancePolicy, Depends(_maintenance)]
