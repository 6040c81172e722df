"""What every route may receive: the database, the settings, the clock and the queue policy,
from the app's state; and the check that a route's query names only parameters it takes. Only
the core is imported here (a contract holds it): a dependency on a domain is the domain's own,
in its router."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from priorizer.config import Settings
from priorizer.db import Database
from priorizer.queue.policy import QueuePolicy

# Async, as every dependency that does not block: FastAPI runs a plain function in a worker
# thread, and the hand-offs of a node call's six dependencies cost /allocate a third of its
# throughput on SQLite (200 -> 320 requests/s saturated once they were async; README).


async def _database(request: Request) -> Database:
    return request.app.state.database


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def _queue(request: Request) -> QueuePolicy:
    return request.app.state.queue


DbDep = Annotated[Database, Depends(_database)]
SettingsDep = Annotated[Settings, Depends(_settings)]
NowDep = Annotated[datetime, Depends(_now)]
QueueDep = Annotated[QueuePolicy, Depends(_queue)]


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
