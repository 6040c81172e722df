"""The seed's /status, and /health for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from priorizer.deps import DbDep, SettingsDep
from priorizer.system import service
from priorizer.system.schemas import HealthRead, StatusRead

router = APIRouter(tags=["system"])


def _health(request: Request) -> HealthRead:
    database_ok, scheduler_ok, reasons = True, True, []
    try:
        request.app.state.database.ping()
    except Exception as error:  # any failure to answer is "unavailable", whatever the driver says
        database_ok = False
        reasons.append(f"database does not answer ({type(error).__name__})")
    scheduler = request.app.state.scheduler
    if request.app.state.settings.run_scheduler and (scheduler is None or not scheduler.running):
        scheduler_ok = False
        reasons.append("maintenance scheduler is not running")
    return HealthRead(
        status="ok" if database_ok and scheduler_ok else "unavailable",
        database=database_ok,
        scheduler=scheduler_ok,
        reason="; ".join(reasons) or None,
    )


@router.get(
    "/health",
    response_model=HealthRead,
    summary="200 when the database answers and the scheduler runs, 503 otherwise",
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
    scheduler = request.app.state.scheduler
    job = scheduler.get_job("maintenance") if scheduler is not None else None
    return StatusRead(
        **figures,
        ckan_datasets=figures["assets"],
        next_auto_update=job.next_run_time if job is not None else None,
        system_health="healthy" if _health(request).status == "ok" else "degraded",
        replication_target=settings.replication_target,
    )
