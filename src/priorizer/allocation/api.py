"""Allocation routes: the seed's /allocate and /release, plus read views."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from priorizer.allocation import fleet, lifecycle, service
from priorizer.allocation.models import ALLOCATED, COMPLETED
from priorizer.allocation.schemas import (
    AllocatedAsset,
    AllocateRequest,
    AllocationPage,
    AllocationRead,
    AllocationStatus,
    CompleteRequest,
    CompleteResponse,
    DiscardRequest,
    DiscardResponse,
    FailRequest,
    FailResponse,
    RankingEntry,
    ReleaseRequest,
    ReleaseResponse,
    RenewRequest,
    RenewResponse,
)
from priorizer.catalog import service as catalog_service
from priorizer.catalog.schemas import AssetDetail, AssetId, AssetRead, HoldingRead
from priorizer.node import service as node_service
from priorizer.node.schemas import NodeDetail, NodeId, NodePage, NodeRead
from priorizer.node.standing import CapLimits
from priorizer.web.auth import NODE_AUTH_ERRORS, NodeIdentity, acting_node
from priorizer.web.deps import DbDep, NowDep, QueueDep, SettingsDep
from priorizer.web.limits import limit_node_call


async def _caps(request: Request) -> CapLimits:
    """The lease caps nodes earn and lose (`maintenance.service.cap_limits`)."""
    caps: CapLimits = request.app.state.maintenance.caps
    return caps


CapsDep = Annotated[CapLimits, Depends(_caps)]
router = APIRouter(tags=["allocation"])


@router.post(
    "/allocate",
    response_model=list[AllocatedAsset],
    summary="Lease the most important assets that fit the node's free space",
    responses={
        **NODE_AUTH_ERRORS,
        200: {"headers": {"X-Node-Id": {"description": "The node id used."}}},
    },
)
async def allocate(
    body: AllocateRequest,
    request: Request,
    identity: NodeIdentity,
    response: Response,
    db: DbDep,
    settings: SettingsDep,
    queue: QueueDep,
    caps: CapsDep,
    now: NowDep,
) -> list[AllocatedAsset]:
    _check_plausible(body.free_space_gb, settings.max_free_space_gb)
    claimed = acting_node(body.node_id, identity)
    limit_node_call(request, claimed, identity)
    node_id = claimed or f"node-{uuid.uuid4().hex[:16]}"
    leases: list[service.Lease] = await db.run_write(
        functools.partial(
            service.allocate,
            node_id=node_id,
            free_space_gb=body.free_space_gb,
            queue=queue,
            max_assets=settings.max_assets_per_allocation,
            limits=caps,
            lease_seconds=settings.allocation_expiry_seconds,
            failed_retry_seconds=settings.failed_retry_seconds,
            now=now,
            client_address=request.client.host if request.client else None,
            unproven_address_cap=settings.unproven_address_cap,
        )
    )
    response.headers["X-Node-Id"] = node_id
    return [_allocated(lease) for lease in leases]


def _allocated(lease: service.Lease) -> AllocatedAsset:
    return AllocatedAsset(
        **lease.asset,
        allocation_id=lease.allocation_id,
        node_id=lease.node_id,
        expires_at=lease.expires_at,
        reserved_mb=lease.reserved_mb,
    )


@router.get(
    "/nodes/{node_id}/leases",
    response_model=list[AllocatedAsset],
    tags=["nodes"],
    summary="A node's open leases, as /allocate gave them (for a node taking up its work)",
    responses={**NODE_AUTH_ERRORS, 404: {"description": "No such node."}},
)
def node_leases(node_id: NodeId, identity: NodeIdentity, db: DbDep) -> list[AllocatedAsset]:
    acting_node(node_id, identity)
    with db.read() as session:
        return [_allocated(lease) for lease in service.node_leases(session, node_id=node_id)]


def _check_plausible(free_space_gb: float, most: float) -> None:
    """422, as for any invalid field, for a free space no node has (MAX_FREE_SPACE_GB)."""
    if free_space_gb > most:
        problem = {
            "loc": ("body", "free_space_gb"),
            "msg": f"no node has that much free space: at most {most:g} GiB (MAX_FREE_SPACE_GB)",
            "type": "less_than_equal",
            "input": free_space_gb,
        }
        raise RequestValidationError([problem])


@router.post(
    "/release",
    response_model=ReleaseResponse,
    summary="Give back an open lease; the asset returns to the queue",
    responses={
        **NODE_AUTH_ERRORS,
        404: {"description": "That node holds no open lease on that asset."},
    },
)
def release(
    body: ReleaseRequest,
    request: Request,
    identity: NodeIdentity,
    db: DbDep,
    queue: QueueDep,
    now: NowDep,
) -> ReleaseResponse:
    node_id = acting_node(body.node_id, identity)
    limit_node_call(request, node_id, identity)
    with db.write() as session:
        service.release_lease(
            session, asset_id=body.asset_id, node_id=node_id, queue=queue, now=now
        )
    return ReleaseResponse()


@router.post(
    "/complete",
    response_model=CompleteResponse,
    summary="Report a finished copy: the lease becomes a copy the node holds",
    responses={
        **NODE_AUTH_ERRORS,
        404: {"description": "The node holds no lease (open or expired) on the asset."},
        409: {"description": "The node reported this copy before with another checksum."},
    },
)
def complete(
    body: CompleteRequest,
    request: Request,
    identity: NodeIdentity,
    db: DbDep,
    settings: SettingsDep,
    caps: CapsDep,
    queue: QueueDep,
    now: NowDep,
) -> CompleteResponse:
    node_id = acting_node(body.node_id, identity)
    limit_node_call(request, node_id, identity)
    with db.write() as session:
        done = lifecycle.complete(
            session,
            asset_id=body.asset_id,
            node_id=node_id,
            checksum_sha256=body.checksum_sha256,
            magnet_link=body.magnet_link,
            size_mb=body.size_mb,
            size_bytes=body.size_bytes,
            queue=queue,
            limits=caps,
            size_tolerance=settings.size_tolerance,
            failure_threshold=settings.failure_threshold,
            now=now,
        )
    return CompleteResponse(**dataclasses.asdict(done), disputed=done.dispute is not None)


@router.post(
    "/fail",
    response_model=FailResponse,
    summary="Report a failed download: the lease closes and the asset returns to the queue",
    responses={
        **NODE_AUTH_ERRORS,
        404: {"description": "That node holds no open lease on that asset."},
    },
)
def fail(
    body: FailRequest,
    request: Request,
    identity: NodeIdentity,
    db: DbDep,
    settings: SettingsDep,
    caps: CapsDep,
    queue: QueueDep,
    now: NowDep,
) -> FailResponse:
    node_id = acting_node(body.node_id, identity)
    limit_node_call(request, node_id, identity)
    with db.write() as session:
        failure = lifecycle.fail(
            session,
            asset_id=body.asset_id,
            node_id=node_id,
            reason=body.reason,
            reason_code=body.reason_code,
            queue=queue,
            limits=caps,
            failure_threshold=settings.failure_threshold,
            now=now,
        )
    return FailResponse(**dataclasses.asdict(failure))


@router.post(
    "/discard",
    response_model=DiscardResponse,
    summary="A node's copy is damaged or gone: it stops counting; the asset returns to the queue",
    responses={
        **NODE_AUTH_ERRORS,
        404: {"description": "That node holds no copy of that asset."},
    },
)
def discard(
    body: DiscardRequest,
    request: Request,
    identity: NodeIdentity,
    db: DbDep,
    settings: SettingsDep,
    caps: CapsDep,
    queue: QueueDep,
    now: NowDep,
) -> DiscardResponse:
    node_id = acting_node(body.node_id, identity)
    limit_node_call(request, node_id, identity)
    with db.write() as session:
        done = lifecycle.discard(
            session,
            asset_id=body.asset_id,
            node_id=node_id,
            reason=body.reason,
            queue=queue,
            size_tolerance=settings.size_tolerance,
            failure_threshold=settings.failure_threshold,
            now=now,
        )
    return DiscardResponse(allocation_id=done.allocation_id, copies=done.copies)


@router.post(
    "/renew",
    response_model=RenewResponse,
    summary="Extend a node's open leases (all, or those listed)",
    responses={**NODE_AUTH_ERRORS, 404: {"description": "No such node."}},
)
def renew(
    body: RenewRequest,
    request: Request,
    identity: NodeIdentity,
    db: DbDep,
    settings: SettingsDep,
    now: NowDep,
) -> RenewResponse:
    node_id = acting_node(body.node_id, identity)
    limit_node_call(request, node_id, identity)
    with db.write() as session:
        renewed, expires_at = lifecycle.renew(
            session,
            node_id=node_id,
            asset_ids=body.asset_ids,
            lease_seconds=settings.allocation_expiry_seconds,
            now=now,
        )
    missing = sorted(set(body.asset_ids or ()) - set(renewed))
    return RenewResponse(
        renewed=len(renewed), expires_at=expires_at if renewed else None, not_renewed=missing
    )


@router.get("/allocations", response_model=AllocationPage, summary="Allocations, oldest first")
def list_allocations(
    db: DbDep,
    node_id: NodeId | None = None,
    asset_id: AssetId | None = None,
    status: AllocationStatus | None = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
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
def ranking(
    db: DbDep, queue: QueueDep, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[RankingEntry]:
    with db.read() as session:
        rows = service.ranking(session, limit=limit, queue=queue)
        return [RankingEntry(**row) for row in rows]


# The views of one asset and of the nodes, with their leases and copies: allocation's, since it
# knows who holds what. Mounted after the scoring router, whose /assets/{id}/priority the
# catalog-wide /assets/{asset_id:path} would otherwise take.
views = APIRouter()


@views.get(
    "/nodes",
    tags=["nodes"],
    response_model=NodePage,
    summary="Known nodes, by id, a page at a time",
)
def list_nodes(
    db: DbDep,
    cursor: NodeId | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NodePage:
    with db.read() as session:
        nodes = node_service.list_nodes(session, after=cursor, limit=limit)
        summaries = service.node_summaries(session, node_ids=[n.id for n in nodes])
        items = [
            NodeRead.model_validate(node).model_copy(update=summaries[node.id]) for node in nodes
        ]
    return NodePage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@views.get(
    "/nodes/{node_id}",
    tags=["nodes"],
    response_model=NodeDetail,
    summary="One node and its standing",
    responses={404: {"description": "No such node."}},
)
def get_node(node_id: NodeId, db: DbDep, caps: CapsDep) -> NodeDetail:
    with db.read() as session:
        node = node_service.get_node(session, node_id=node_id)
        summary = service.node_summaries(session, node_ids=[node.id])[node.id]
        standing = fleet.node_standing(session, node=node, limits=caps)
        base = NodeRead.model_validate(node).model_dump()
        return NodeDetail(**{**base, **summary, **standing})


@views.get(
    "/assets/{asset_id:path}",
    tags=["catalog"],
    response_model=AssetDetail,
    summary="One asset, its open leases, its copies and its last 100 closed allocations",
    responses={404: {"description": "No such asset."}},
)
def get_asset(asset_id: AssetId, db: DbDep) -> AssetDetail:
    with db.read() as session:
        asset = AssetRead.model_validate(catalog_service.get_asset(session, asset_id=asset_id))
        holdings = service.asset_holdings(session, asset_id=asset_id)
        history = service.asset_history(session, asset_id=asset_id)
        return AssetDetail(
            **asset.model_dump(),
            open_leases=[HoldingRead.model_validate(h) for h in holdings if h.status == ALLOCATED],
            holders=[HoldingRead.model_validate(h) for h in holdings if h.status == COMPLETED],
            history=[HoldingRead.model_validate(h) for h in history],
            discovery=catalog_service.discovery_of(
                session, asset_id=asset_id, parent_id=asset.parent_id
            ),
        )
