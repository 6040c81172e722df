"""The seed's /status, and /health for load balancers and orchestrators."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from priorizer import metrics
from priorizer.maintenance import repo as maintenance_repo
from priorizer.maintenance.jobs import JOB_ID
from priorizer.status import service
from priorizer.status.schemas import HealthRead, MaintenanceRunRead, StatusRead
from priorizer.web.deps import DbDep, SettingsDep

router = APIRouter(tags=["system"])


def _health(request: Request) -> HealthRead:
    state = request.app.state
    database_problem = maintenance_problem = None
    try:
        state.database.ping()
        with state.database.read() as session:
            maintenance_problem = service.maintenance_problem(
                session,
                now=state.clock(),
                interval_seconds=state.settings.auto_update_interval_seconds,
                started_at=state.started_at,
            )
    except Exception as error:  # any failure to answer is "unavailable", whatever the driver says
        database_problem = f"database does not answer ({type(error).__name__})"
    scheduler = state.scheduler
    checks, reason = service.health(
        database_problem=database_problem,
        maintenance_problem=maintenance_problem,
        scheduler_expected=state.settings.run_scheduler,
        scheduler_running=scheduler is not None and scheduler.running,
    )
    status = "ok" if all(checks.values()) else "unavailable"
    return HealthRead(status=status, **checks, reason=reason)


@router.get(
    "/health",
    response_model=HealthRead,
    summary="200 when the database answers, the scheduler runs and maintenance is on time",
    responses={503: {"model": HealthRead}},
)
def health(request: Request) -> HealthRead | JSONResponse:
    result = _health(request)
    if result.status != "ok":
        return JSONResponse(result.model_dump(), status_code=503)
    return result


@router.get("/status", response_model=StatusRead, summary="Where the rescue stands")
def status(request: Request, db: DbDep, settings: SettingsDep) -> StatusRead:
    with db.read() as session:
        figures = service.status(session, replication_target=settings.replication_target)
    return current_status(request, figures)


def current_status(request: Request, figures: dict[str, Any]) -> StatusRead:
    """GET /status from the database's figures, with this process's scheduler and health."""
    scheduler = request.app.state.scheduler
    job = scheduler.get_job(JOB_ID) if scheduler is not None else None
    health = _health(request)
    return StatusRead(
        **figures,
        next_auto_update=job.next_run_time if job is not None else None,
        system_health="healthy" if health.status == "ok" else "degraded",
        health_reason=health.reason,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics: this process's counters, and the rescue's figures",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
)
def metrics_page(db: DbDep, settings: SettingsDep) -> Response:
    def read() -> dict[str, Any]:
        with db.read() as session:
            return service.figures(session, replication_target=settings.replication_target)

    body = metrics.exposition(metrics.Gauges(read))
    return Response(body, media_type=metrics.CONTENT_TYPE)


@router.get(
    "/maintenance/runs",
    response_model=list[MaintenanceRunRead],
    summary="The latest maintenance cycles, newest first",
)
def maintenance_runs(
    db: DbDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[MaintenanceRunRead]:
    with db.read() as session:
        return [
            MaintenanceRunRead.model_validate(r)
            for r in maintenance_repo.recent(session, limit=limit)
        ]
