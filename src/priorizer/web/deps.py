"""What routes receive: the database, the settings, the clock, the policies and what a harvest
works with, from the app's state; and the check that a route's query names only parameters it
takes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.harvest import alerts
from priorizer.harvest.service import Context as HarvestContext
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.queue.policy import QueuePolicy


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


def harvest_context(state: Any) -> HarvestContext:
    """What a harvest in this server works with: its database, policies, clock, and the
    removal alerts (`harvest.alerts`) when REMOVAL_WEBHOOK_URL is set."""
    return HarvestContext(
        database=state.database,
        policy=state.scoring,
        queue=state.queue,
        clock=state.clock,
        on_removed=alerts.sender(state.settings, state.database),
    )


def _harvest_context(request: Request) -> HarvestContext:
    return harvest_context(request.app.state)


DbDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
NowDep = Annotated[datetime, Depends(_now)]
QueueDep = Annotated[QueuePolicy, Depends(_queue)]
MaintenanceDep = Annotated[MaintenancePolicy, Depends(_maintenance)]
HarvestContextDep = Annotated[HarvestContext, Depends(_harvest_context)]


async def known_query_parameters(request: Request) -> None:
    """A route that takes query parameters refuses one it does not know (422 naming it and
    those it takes): a misspelt filter would otherwise answer with everything, unfiltered.
    Routes that take none ignore the query string. Async: it runs on the event loop, not in a
    worker thread, so it costs the node endpoints next to nothing."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in known]
    if known and unknown:
        takes = ", ".join(sorted(known))
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter; this endpoint takes: {takes}",
                    "input": request.query_params[name],
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names
