"""The FastAPI application: routers, error mapping, and the scheduler's life."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from priorizer import logs
from priorizer.allocation.api import router as allocation_router
from priorizer.allocation.policy import QueuePolicy
from priorizer.catalog.api import router as catalog_router
from priorizer.config import Settings
from priorizer.dashboard.api import router as dashboard_router
from priorizer.db import Database
from priorizer.errors import PriorizerError
from priorizer.harvest.api import router as harvest_router
from priorizer.logs import RequestLog
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.node.api import router as node_router
from priorizer.scheduler import build_scheduler
from priorizer.scoring import policy as scoring_policy
from priorizer.scoring.api import router as scoring_router
from priorizer.system.api import router as system_router

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def queue_policy(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        replication_target=settings.replication_target,
        copy_penalty=settings.copy_penalty,
        unknown_size_mb=settings.unknown_size_mb,
    )


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The app over an already migrated database (see `startup.prepare`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings.sqlalchemy_url)
        app.state.database = database
        app.state.scheduler = None
        try:
            if settings.run_scheduler:
                app.state.scheduler = build_scheduler(
                    database=database, policy=app.state.maintenance, clock=clock
                )
                app.state.scheduler.start()
            yield
        finally:
            if app.state.scheduler is not None and app.state.scheduler.running:
                app.state.scheduler.shutdown(wait=True)
            database.dispose()

    app = FastAPI(
        title="Priorizer",
        version="0.1.0",
        summary="Decides which public science data gets rescued first, and by which node.",
        lifespan=lifespan,
        debug=settings.debug,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.queue = queue_policy(settings)
    app.state.maintenance = MaintenancePolicy.from_settings(settings, app.state.queue)
    app.state.started_at = clock()
    app.state.scoring = scoring_policy.load(settings.scoring_policy_file)
    app.state.harvests = {}  # source key -> the thread harvesting it
    app.state.harvest_lock = threading.Lock()
    for router in (
        allocation_router,
        scoring_router,  # before the catalog's /assets/{asset_id:path}, which would take it
        catalog_router,
        node_router,
        harvest_router,
        system_router,
        dashboard_router,
    ):
        app.include_router(router)
    app.mount(
        "/static",
        StaticFiles(packages=[("priorizer.dashboard", "static")]),
        name="dashboard-static",
    )
    app.add_middleware(RequestLog)

    @app.exception_handler(PriorizerError)
    async def domain_error(_request: Request, error: PriorizerError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input, and cannot encode NaN or Infinity.
        return JSONResponse({"detail": _finite(jsonable_encoder(error.errors()))}, status_code=422)

    return app


def _finite(value: Any) -> Any:
    """The value with non-finite floats spelled as strings, so JSON can carry it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process)."""
    settings = Settings()
    logs.configure(settings)
    return create_app(settings)
