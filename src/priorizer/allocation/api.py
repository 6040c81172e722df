"""Allocation routes: the seed's /allocate and /release, plus read views."""

from __future__ import annotations

import functools
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from priorizer.allocation import service
from priorizer.allocation.schemas import (
    AllocatedAsset,
    AllocateRequest,
    AllocationPage,
    AllocationRead,
    AllocationStatus,
    RankingEntry,
    ReleaseRequest,
    ReleaseResponse,
)
from priorizer.catalog.schemas import AssetId
from priorizer.deps import DbDep, NowDep, QueueDep, SettingsDep
from priorizer.node.schemas import NodeId

router = APIRouter(tags=["allocation"])


@router.post(
    "/allocate",
    response_model=list[AllocatedAsset],
    summary="Lease the most important assets that fit the node's free space",
    responses={200: {"headers": {"X-Node-Id": {"description": "The node id used."}}}},
)
async def allocate(
    body: AllocateRequest,
    response: Response,
    db: DbDep,
    settings: SettingsDep,
    queue: QueueDep,
    now: NowDep,
) -> list[AllocatedAsset]:
    node_id = body.node_id or f"node-{uuid.uuid4().hex[:16]}"
    leases = await db.run_write(
        functools.partial(
            service.allocate,
            node_id=node_id,
            free_space_gb=body.free_space_gb,
            queue=queue,
            max_assets=settings.max_assets_per_allocation,
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )
    )
    response.headers["X-Node-Id"] = node_id
    return [
        AllocatedAsset(
            **lease.asset,
            allocation_id=lease.allocation_id,
            node_id=lease.node_id,
            expires_at=lease.expires_at,
            reserved_mb=lease.reserved_mb,
        )
        for lease in leases
    ]


@router.post(
    "/release",
    response_model=ReleaseResponse,
    summary="Give back an open lease; the asset returns to the queue",
    responses={404: {"description": "That node holds no open lease on that asset."}},
)
def release(body: ReleaseRequest, db: DbDep, queue: QueueDep, now: NowDep) -> ReleaseResponse:
    with db.write() as session:
        service.release_lease(
            session, asset_id=body.asset_id, node_id=body.node_id, queue=queue, now=now
        )
    return ReleaseResponse()


@router.get("/allocations", response_model=AllocationPage, summary="Allocations, oldest first")
def list_allocations(
    db: DbDep,
    node_id: NodeId | None = None,
    asset_id: AssetId | None = None,
    status: AllocationStatus | None = None,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AllocationPage:
    with db.read() as session:
        rows = service.list_allocations(
            session, node_id=node_id, asset_id=asset_id, status=status, after=cursor, limit=limit
        )
        items = [AllocationRead.model_validate(row) for row in rows]
    return AllocationPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get(
    "/ranking",
    response_model=list[RankingEntry],
    summary="The next assets in allocation order (read only)",
)
def ranking(db: DbDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[RankingEntry]:
    with db.read() as session:
        return [RankingEntry(**row) for row in service.ranking(session, limit=limit)]
