"""The FastAPI application: routers, middleware, error mapping, and the scheduler's life."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError

from priorizer import logs
from priorizer.allocation.api import router as allocation_router
from priorizer.allocation.api import views as allocation_views
from priorizer.catalog.api import router as catalog_router
from priorizer.clock import utcnow
from priorizer.config import Settings, UnsafeSettings, describe_settings_error
from priorizer.dashboard.api import router as dashboard_router
from priorizer.db import Database
from priorizer.harvest import alerts
from priorizer.harvest.api import router as harvest_router
from priorizer.harvest.service import Context as HarvestContext
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.node import service as node_service
from priorizer.node.api import router as node_router
from priorizer.queue.policy import queue_policy
from priorizer.scheduler import add_probe_job, build_scheduler
from priorizer.scoring import policy as scoring_policy
from priorizer.scoring.api import router as scoring_router
from priorizer.sources import jobs as sources_jobs
from priorizer.sources.api import router as sources_router
from priorizer.status.api import router as status_router
from priorizer.web.deps import known_query_parameters
from priorizer.web.errors import COMMON_ERRORS, handle_errors
from priorizer.web.limits import RateLimits
from priorizer.web.middleware import BodyLimit, ErrorBarrier, RequestLog

HARVEST_STOP_WAIT_SECONDS = 10.0
DOCS_ASSETS_URL = "/static/api-docs"


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


def node_of_token(database: Database, token: str) -> str | None:
    """The node a token belongs to (`web.auth.node_identity` asks, under NODE_AUTH)."""
    with database.read() as session:
        return node_service.node_of_token(session, token=token)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The app over an already migrated database (see `startup.prepare`). Refuses settings
    that are unsafe to serve with (`Settings.unsafe_to_serve`), whoever builds the app."""
    problem = settings.unsafe_to_serve()
    if problem is not None:
        raise UnsafeSettings(problem)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(
            settings.sqlalchemy_url,
            group_commit=settings.group_commit,
            pool_size=settings.database_pool_size,
        )
        app.state.database = database
        app.state.scheduler = None
        try:
            if settings.run_scheduler:
                check = sources_jobs.SourcesJob(app.state.harvest_context)
                app.state.scheduler = build_scheduler(
                    database=database,
                    policy=app.state.maintenance,
                    clock=clock,
                    sources=(check, settings.sources_check_seconds),
                )
                if settings.probe_interval_minutes > 0:
                    add_probe_job(app.state.scheduler, settings, database, app.state.queue, clock)
                app.state.scheduler.start()
            yield
        finally:
            if app.state.scheduler is not None and app.state.scheduler.running:
                app.state.scheduler.shutdown(wait=True)
            # A harvest still running stops with the process; its run continues next time.
            for worker in list(app.state.harvests.values()):
                worker.join(timeout=HARVEST_STOP_WAIT_SECONDS)
            database.dispose()

    # /docs (Swagger UI) loads its script and styles from fastapi-offline's package, not a
    # CDN: it works with no internet, as the dashboard does. No ReDoc: its page fetches a logo
    # from the internet whatever it is told.
    app = FastAPIOffline(
        redoc_url=None,
        title="Priorizer",
        version="0.1.0",
        summary="Decides which public science data gets rescued first, and by which node.",
        lifespan=lifespan,
        # Never a traceback to a client, whatever DEBUG says: it is for the logs.
        debug=False,
        responses=COMMON_ERRORS,
        static_url=DOCS_ASSETS_URL,
        favicon_url="/static/favicon.svg",
        # Swagger UI would otherwise ask a validator on the internet about the schema.
        swagger_ui_parameters={"validatorUrl": None},
        dependencies=[Depends(known_query_parameters)],
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.queue = queue_policy(settings)
    app.state.maintenance = MaintenancePolicy.from_settings(settings, app.state.queue)
    app.state.harvest_context = lambda: harvest_context(app.state)
    app.state.node_of_token = lambda token: node_of_token(app.state.database, token)
    app.state.started_at = clock()
    app.state.scoring = scoring_policy.load(settings.scoring_policy_file)
    app.state.harvests = {}  # source key -> the thread harvesting it
    app.state.harvest_lock = threading.Lock()
    for router in (
        allocation_router,
        scoring_router,  # before /assets/{asset_id:path} (allocation's views), which would take it
        catalog_router,
        allocation_views,
        node_router,
        harvest_router,
        sources_router,
        status_router,
        dashboard_router,
    ):
        app.include_router(router)
    app.mount(
        "/static",
        StaticFiles(packages=[("priorizer.dashboard", "static")]),
        name="dashboard-static",
    )
    app.state.rate_limits = RateLimits(
        per_node=settings.rate_limit_per_node, per_address=settings.rate_limit_per_address
    )
    app.add_middleware(ErrorBarrier)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestLog)  # outermost: every request, refused or not, gets an id
    handle_errors(app)
    return app


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process)."""
    try:
        settings = Settings()
    except ValidationError as error:  # `cli.serve` checked them; the environment changed since
        raise SystemExit(describe_settings_error(error)) from None
    logs.configure(settings)
    try:
        app = create_app(settings)
    except UnsafeSettings as error:
        raise SystemExit(f"error: {error}") from None
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Leave what the server process has built so far (modules, classes, the app) out of
    every later garbage collection. About 160,000 objects, alive as long as the process: a
    full collection walked them all, pausing every request in flight for 80-120 ms a few
    times a minute under load; frozen, those pauses take about 10 ms (`gc.freeze`). Only for
    the server's own process (`priorizer serve`): one that builds apps again and again (the
    tests) would keep whatever cycles its earlier apps leave."""
    gc.collect()
    gc.freeze()
