"""Watched-source routes (admin): add, list, remove."""

from __future__ import annotations

from fastapi import APIRouter, status

from priorizer.sources import service
from priorizer.sources.schemas import SourceCreate, SourceRead, SourceRemoved
from priorizer.web.auth import ADMIN, ADMIN_ERRORS
from priorizer.web.deps import DbDep, NowDep

router = APIRouter(tags=["sources"])


@router.get(
    "/sources",
    response_model=list[SourceRead],
    summary="Admin: the watched sources, their last and next harvests",
    responses=ADMIN_ERRORS,
    dependencies=ADMIN,
)
def list_sources(db: DbDep) -> list[SourceRead]:
    with db.read() as session:
        return [SourceRead.model_validate(v) for v in service.list_sources(session)]


@router.post(
    "/sources",
    response_model=SourceRead,
    status_code=status.HTTP_201_CREATED,
    summary="Admin: watch a source (harvested by the scheduler, first at once)",
    responses={**ADMIN_ERRORS, 409: {"description": "That source is watched already."}},
    dependencies=ADMIN,
)
def add_source(body: SourceCreate, db: DbDep, now: NowDep) -> SourceRead:
    every = service.parse_every(body.every)
    full = service.parse_every(body.full_every) if body.full_every is not None else None
    with db.write() as session:
        source = service.add_source(
            session,
            url=body.url,
            kind=body.kind,
            organization=body.organization,
            query=body.query,
            every_seconds=every,
            full_every_seconds=full,
            now=now,
        )
        return SourceRead.model_validate(service.view(source))


@router.delete(
    "/sources/{ref:path}",
    response_model=SourceRemoved,
    summary="Admin: stop watching a source, by id or URL (its datasets stay)",
    responses={**ADMIN_ERRORS, 404: {"description": "No such watched source."}},
    dependencies=ADMIN,
)
def remove_source(ref: str, db: DbDep) -> SourceRemoved:
    with db.write() as session:
        source = service.remove_source(session, ref=ref)
        return SourceRemoved(id=source.id, key=source.key)
