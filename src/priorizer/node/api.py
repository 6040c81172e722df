"""Node routes: enrolment, tokens, revocation (the views of nodes, with their leases, are
allocation's: `allocation.api.views`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends

from priorizer.errors import Forbidden
from priorizer.node import service
from priorizer.node.schemas import (
    EnrollRequest,
    EnrollResponse,
    NodeId,
    ReinstateResponse,
    RevokeResponse,
)
from priorizer.web.auth import ADMIN, ADMIN_ERRORS, enrollment_allowed
from priorizer.web.deps import DbDep, NowDep

router = APIRouter(tags=["nodes"])


@router.post(
    "/nodes/enroll",
    response_model=EnrollResponse,
    status_code=201,
    summary="Enroll a node: a token of its own for its calls (admin, or X-Enrollment-Secret)",
    responses={
        401: {"description": "Neither the admin token nor the enrollment secret."},
        403: {"description": "Only an admin may rotate a token; or the node is revoked."},
        409: {"description": "Enrolled already (an admin may rotate its token)."},
    },
)
def enroll(
    body: EnrollRequest, db: DbDep, now: NowDep, admin: Annotated[bool, Depends(enrollment_allowed)]
) -> EnrollResponse:
    if body.rotate and not admin:
        raise Forbidden("only an admin may rotate a node's token")
    node_id = body.node_id or f"node-{uuid.uuid4().hex[:16]}"
    with db.write() as session:
        token = service.enroll(session, node_id=node_id, now=now, rotate=body.rotate)
    return EnrollResponse(node_id=node_id, token=token)


@router.post(
    "/nodes/{node_id}/revoke",
    response_model=RevokeResponse,
    summary="Admin: the node's token stops working, and it cannot enroll again until reinstated",
    responses={**ADMIN_ERRORS, 404: {"description": "No such node."}},
    dependencies=ADMIN,
)
def revoke(node_id: NodeId, db: DbDep, now: NowDep) -> RevokeResponse:
    with db.write() as session:
        revoked_at = service.revoke(session, node_id=node_id, now=now)
    return RevokeResponse(node_id=node_id, revoked_at=revoked_at)


@router.post(
    "/nodes/{node_id}/reinstate",
    response_model=ReinstateResponse,
    summary="Admin: lift a revocation; the node enrolls again for a new token",
    responses={**ADMIN_ERRORS, 404: {"description": "No such node."}},
    dependencies=ADMIN,
)
def reinstate(node_id: NodeId, db: DbDep) -> ReinstateResponse:
    with db.write() as session:
        was_revoked = service.reinstate(session, node_id=node_id)
    return ReinstateResponse(node_id=node_id, was_revoked=was_revoked)
