"""Harvest routes: start one in the background, and read the runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from priorizer.harvest import dispatch, service
from priorizer.harvest.schemas import HarvestRequest, HarvestRunRead, HarvestStarted
from priorizer.web.auth import ADMIN, ADMIN_ERRORS
from priorizer.web.deps import DbDep

router = APIRouter(tags=["harvest"])


def _context(request: Request) -> service.Context:
    """What a harvest in this server works with (`web.app.harvest_context`)."""
    context: service.Context = request.app.state.harvest_context()
    return context


ContextDep = Annotated[service.Context, Depends(_context)]


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
def start_harvest(body: HarvestRequest, request: Request, context: ContextDep) -> HarvestStarted:
    state = request.app.state
    source = dispatch.source_for(
        body.url, kind=body.kind, organization=body.organization, query=body.query
    )
    run_id = dispatch.start_in_background(
        state.harvests,
        state.harvest_lock,
        context,
        source,
        since=body.since,
        incremental=body.incremental,
    )
    return HarvestStarted(source=source.key, run_id=run_id)


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
