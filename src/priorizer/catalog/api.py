"""Catalog routes: the seed's /update-ckan, asset states, the asset list (one asset's view,
with its holdings, is allocation's: `allocation.api.views`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from priorizer.catalog import service
from priorizer.catalog.schemas import (
    AssetId,
    AssetIdsRequest,
    AssetPage,
    AssetRead,
    AssetStateFilter,
    AssetStateResponse,
    UpdateCkanRequest,
    UpdateCkanResponse,
)
from priorizer.db import Database
from priorizer.queue.policy import QueuePolicy
from priorizer.web.auth import ADMIN, ADMIN_ERRORS
from priorizer.web.deps import DbDep, NowDep, QueueDep

router = APIRouter(tags=["catalog"])


@router.post(
    "/update-ckan",
    response_model=UpdateCkanResponse,
    summary="Set base priorities; one invalid entry rejects the whole batch",
    responses=ADMIN_ERRORS,
    dependencies=ADMIN,
)
def update_ckan(
    body: UpdateCkanRequest, db: DbDep, queue: QueueDep, now: NowDep
) -> UpdateCkanResponse:
    updates = [(u.asset_id, u.new_priority) for u in body.updates]
    with db.write() as session:
        report = service.update_priorities(session, updates=updates, queue=queue, now=now)
    return UpdateCkanResponse(
        updated_items=report.updated,
        unchanged_items=report.unchanged,
        unknown_ids=report.unknown_ids,
    )


@router.post(
    "/assets/reinstate",
    response_model=AssetStateResponse,
    tags=["admin"],
    summary="Hand unreachable or withdrawn assets out again, forgetting their failures",
    responses=ADMIN_ERRORS,
    dependencies=ADMIN,
)
def reinstate(body: AssetIdsRequest, db: DbDep, queue: QueueDep, now: NowDep) -> AssetStateResponse:
    return _set_states(body, db, queue, now, withdraw=False)


@router.post(
    "/assets/withdraw",
    response_model=AssetStateResponse,
    tags=["admin"],
    summary="Take assets out of the catalog (copies and history are kept)",
    description="Withdrawn assets are never handed out again; their open leases are closed "
    "by the next maintenance cycle.",
    responses=ADMIN_ERRORS,
    dependencies=ADMIN,
)
def withdraw(body: AssetIdsRequest, db: DbDep, queue: QueueDep, now: NowDep) -> AssetStateResponse:
    return _set_states(body, db, queue, now, withdraw=True)


def _set_states(
    body: AssetIdsRequest, db: Database, queue: QueuePolicy, now: datetime, *, withdraw: bool
) -> AssetStateResponse:
    with db.write() as session:
        report = service.set_states(
            session, asset_ids=body.asset_ids, withdraw=withdraw, queue=queue, now=now
        )
    return AssetStateResponse(changed=report.changed, unknown_ids=report.unknown_ids)


@router.get(
    "/assets",
    response_model=AssetPage,
    summary="The catalog, by id, a page at a time",
    description="`state=removed_upstream` lists the assets of datasets removed upstream; "
    "with `copies=0`, those no node holds yet: the rescue's emergency.",
)
def list_assets(
    db: DbDep,
    cursor: AssetId | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    priority: Annotated[int | None, Query(ge=1, le=10)] = None,
    state: AssetStateFilter | None = None,
    copies: Annotated[int | None, Query(ge=0, le=1000)] = None,
) -> AssetPage:
    with db.read() as session:
        rows = service.list_assets(
            session, after=cursor, limit=limit, priority=priority, state=state, copies=copies
        )
        items = [AssetRead.model_validate(row) for row in rows]
    return AssetPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)
