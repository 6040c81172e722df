"""Harvest routes: start one in the background, and read the runs."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from priorizer.deps import DbDep
from priorizer.errors import Conflict
from priorizer.harvest import alerts, dispatch, service
from priorizer.harvest.schemas import HarvestRequest, HarvestRunRead, HarvestStarted
from priorizer.security import ADMIN, ADMIN_ERRORS

log = logging.getLogger(__name__)
router = APIRouter(tags=["harvest"])


@router.post(
    "/harvest",
    response_model=HarvestStarted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Admin: start harvesting a CKAN portal or a data.json in the background",
    description="Answers once the run is recorded, so a harvest that cannot start is refused "
    "here (409 when that source is being harvested, by this process or another one), never "
    "accepted to die unseen. Harvests of different sources run side by side.",
    responses={
        **ADMIN_ERRORS,
        409: {"description": "That source is being harvested already."},
    },
    dependencies=ADMIN,
)
def start_harvest(body: HarvestRequest, request: Request) -> HarvestStarted:
    state = request.app.state
    source = dispatch.source_for(
        body.url, kind=body.kind, organization=body.organization, query=body.query
    )
    started: Future[int] = Future()
    with state.harvest_lock:
        running = state.harvests.get(source.key)
        if running is not None and running.is_alive():
            raise Conflict(f"a harvest of {source.key} is running already")
        context = harvest_context(state)
        worker = threading.Thread(
            target=_harvest_in_background,
            args=(context, source, body, started),
            name=f"harvest {source.key}",
            daemon=True,
        )
        state.harvests[source.key] = worker
        worker.start()
    # The run's id, or what kept it from starting (another process's harvest: 409).
    return HarvestStarted(source=source.key, run_id=started.result())


def _harvest_in_background(
    context: service.Context, source: service.Source, body: HarvestRequest, started: Future[int]
) -> None:
    try:
        dispatch.harvest(
            context,
            source,
            since=body.since,
            incremental=body.incremental,
            on_start=started.set_result,
        )
    except Exception as error:
        if not started.done():  # not started: the request answers with it
            started.set_exception(error)
        else:  # recorded on the run (interrupted, with its error) for /status
            log.exception("harvest of %s stopped", source.key)
    finally:  # whatever happened, the request waiting for the start gets an answer
        if not started.done():
            started.set_exception(RuntimeError(f"the harvest of {source.key} did not start"))


def harvest_context(state: Any) -> service.Context:
    """What a harvest in this server works with: its database, policies, clock, and the
    removal alerts (`alerts`) when REMOVAL_WEBHOOK_URL is set."""
    return service.Context(
        database=state.database,
        policy=state.scoring,
        queue=state.queue,
        clock=state.clock,
        on_removed=alerts.sender(state.settings, state.database),
    )


@router.get(
    "/harvest/runs",
    response_model=list[HarvestRunRead],
    summary="The latest harvest runs, newest first",
)
def harvest_runs(
    db: DbDep, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> list[HarvestRunRead]:
    with db.read() as session:
        return [HarvestRunRead.model_validate(v) for v in service.recent_runs(session, limit=limit)]
