"""Node calls resolve their dependencies on the event loop: FastAPI runs a dependency that is
a plain function in a worker thread, a hand-off each, for what is a read of the app's state."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from priorizer.allocation import api as allocation_api
from priorizer.node import api as node_api
from priorizer.web.auth import node_identity
from priorizer.web.deps import known_query_parameters


def dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from dependencies(sub)


def runs_on_the_loop(call: Any) -> bool:
    """A coroutine function, or an object whose call is one (`HTTPBearer`)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def test_node_calls_resolve_their_dependencies_without_worker_threads() -> None:
    routes = [*allocation_api.router.routes, *allocation_api.views.routes, *node_api.router.routes]
    node_calls = {
        route.path: route
        for route in routes
        if isinstance(route, APIRoute)
        and any(sub.call is node_identity for sub in dependencies(route.dependant))
    }
    assert {"/allocate", "/complete", "/renew", "/release", "/fail"} <= node_calls.keys()
    in_threads = [
        (path, getattr(sub.call, "__name__", repr(sub.call)))
        for path, route in node_calls.items()
        for sub in dependencies(route.dependant)
        if not runs_on_the_loop(sub.call)
    ]
    assert in_threads == []
    assert runs_on_the_loop(known_query_parameters)  # the app's own, on every route
