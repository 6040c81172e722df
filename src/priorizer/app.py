"""The FastAPI application: routers, error mapping, and the scheduler's life."""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from priorizer import logs
from priorizer.allocation.api import router as allocation_router
from priorizer.allocation.policy import QueuePolicy
from priorizer.catalog.api import router as catalog_router
from priorizer.config import Settings, describe_settings_error
from priorizer.dashboard.api import router as dashboard_router
from priorizer.db import Database
from priorizer.deps import known_query_parameters
from priorizer.errors import PriorizerError
from priorizer.harvest.api import harvest_context
from priorizer.harvest.api import router as harvest_router
from priorizer.logs import RequestLog
from priorizer.maintenance.service import MaintenancePolicy
from priorizer.node.api import router as node_router
from priorizer.scheduler import build_scheduler
from priorizer.scoring import policy as scoring_policy
from priorizer.scoring.api import router as scoring_router
from priorizer.security import (
    BodyLimit,
    ErrorBarrier,
    RateLimits,
    TooManyRequests,
    Unauthorized,
    error_response,
)
from priorizer.sources import jobs as sources_jobs
from priorizer.sources.api import router as sources_router
from priorizer.system.api import router as system_router

log = logging.getLogger(__name__)


class ErrorRead(BaseModel):
    detail: Any = Field(description="What is wrong: a message, or the fields at fault.")
    status: int
    request_id: str | None = Field(description="Also in the X-Request-Id header and the logs.")


COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorRead, "description": "The request body is over MAX_REQUEST_BYTES."},
    422: {"model": ErrorRead, "description": "Invalid input; nothing was changed."},
    500: {"model": ErrorRead, "description": "Unexpected error (details only in the log)."},
}


HARVEST_STOP_WAIT_SECONDS = 10.0
DOCS_ASSETS_URL = "/static/api-docs"
BODY_UNREADABLE = "There was an error parsing the body"  # FastAPI's words
# Pydantic's error types for a body that is not an object, where one is expected.
NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})
# Error details echo the input; past this depth they say "..." (ours nest three levels).
MAX_ECHO_DEPTH = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


def queue_policy(settings: Settings) -> QueuePolicy:
    return QueuePolicy(
        replication_target=settings.replication_target,
        copy_penalty=settings.copy_penalty,
        unknown_size_mb=settings.unknown_size_mb,
        size_penalty=settings.size_penalty,
        size_penalty_from_mb=settings.size_penalty_from_mb,
        size_penalty_max=settings.size_penalty_max,
        smallest_first=settings.fill_order == "smallest",
    )


def add_probe_job(
    scheduler: BackgroundScheduler,
    settings: Settings,
    database: Database,
    queue: QueuePolicy,
    clock: Callable[[], datetime],
) -> None:
    """Discovery's background probe (docs/discovery.md), beside the maintenance cycle."""
    from apscheduler.triggers.interval import IntervalTrigger

    from priorizer.discovery.jobs import JOB_ID, scheduled_probe
    from priorizer.discovery.service import ProbeConfig

    scheduler.add_job(
        scheduled_probe,
        IntervalTrigger(minutes=settings.probe_interval_minutes, timezone="UTC"),
        id=JOB_ID,
        name=JOB_ID,
        kwargs={
            "database": database,
            "config": ProbeConfig.from_settings(settings),
            "queue": queue,
            "limit": settings.probe_batch,
            "clock": clock,
        },
        max_instances=1,
        coalesce=True,
    )


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The app over an already migrated database (see `startup.prepare`)."""

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
                check = sources_jobs.SourcesJob(lambda: harvest_context(app.state))
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
        sources_router,
        system_router,
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
    _handle_errors(app)
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every error answers `{detail, status, request_id}` (`security.error_body`)."""

    @app.exception_handler(PriorizerError)
    async def domain_error(request: Request, error: PriorizerError) -> JSONResponse:
        headers = {}
        if isinstance(error, TooManyRequests):
            headers["Retry-After"] = str(error.retry_after)
        if isinstance(error, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return error_response(request, error.status_code, str(error), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input whole (however deep), and cannot encode NaN
        # or Infinity.
        problems = [_with_hint(request, problem) for problem in error.errors()]
        return error_response(request, 422, jsonable_encoder(_printable(problems)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers) if error.headers else None
        if error.status_code == 400 and error.detail == BODY_UNREADABLE:
            # FastAPI's answer to a body its JSON parser gave up on: invalid input, like any
            # other, saying why.
            return error_response(request, 422, unreadable_body(error.__cause__))
        return error_response(request, error.status_code, error.detail, headers)


def unreadable_body(cause: BaseException | None) -> str:
    """Why a request body could not be read as JSON, in words a client can act on."""
    if isinstance(cause, RecursionError):
        return (
            "the request body is nested too deeply to read (hundreds of levels of arrays or "
            "objects); no request needs more than three"
        )
    if isinstance(cause, UnicodeDecodeError):
        return "the request body is not UTF-8 (JSON must be)"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        limit = sys.get_int_max_str_digits()
        return f"a number in the request body is too long (more than {limit} digits)"
    return "the request body could not be read as JSON"


def _with_hint(request: Request, problem: dict[str, Any]) -> dict[str, Any]:
    """A body that is not an object because it was not sent as JSON says so."""
    if tuple(problem["loc"]) != ("body",) or problem["type"] not in NOT_AN_OBJECT:
        return problem
    sent = request.headers.get("content-type")
    if sent is not None and _is_json(sent):
        return problem
    came = f"this one came as {sent.split(';')[0]}" if sent else "this one had none"
    return {
        "type": "content_type",
        "loc": ("body",),
        "msg": f"the body must be JSON, sent with Content-Type: application/json ({came})",
    }


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    json_like = kind == "application/json" or kind.endswith("+json")  # as FastAPI reads them
    return kind.startswith("application/") and json_like


def _printable(value: Any, depth: int = 0) -> Any:
    """The value with non-finite floats spelled as strings, so JSON can carry it, and cut
    where it nests deeper than any request of ours does (an echoed input can be anything)."""
    if depth > MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _printable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item, depth + 1) for item in value]
    return value


def app_from_environment() -> FastAPI:
    """Factory for `uvicorn --factory` (one call per worker process)."""
    try:
        settings = Settings()
    except ValidationError as error:  # `cli.serve` checked them; the environment changed since
        raise SystemExit(describe_settings_error(error)) from None
    logs.configure(settings)
    return create_app(settings)
