"""Node routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from priorizer.allocation import lifecycle
from priorizer.allocation import service as allocation_service
from priorizer.deps import DbDep, MaintenanceDep
from priorizer.node import service
from priorizer.node.schemas import NodeDetail, NodeId, NodePage, NodeRead

router = APIRouter(tags=["nodes"])


@router.get("/nodes", response_model=NodePage, summary="Known nodes, by id, a page at a time")
def list_nodes(
    db: DbDep,
    cursor: NodeId | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NodePage:
    with db.read() as session:
        nodes = service.list_nodes(session, after=cursor, limit=limit)
        summaries = allocation_service.node_summaries(session, node_ids=[n.id for n in nodes])
        items = [
            NodeRead.model_validate(node).model_copy(update=summaries[node.id]) for node in nodes
        ]
    return NodePage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.get("/nodes/{node_id}", response_model=NodeDetail, summary="One node and its standing")
def get_node(node_id: NodeId, db: DbDep, maintenance: MaintenanceDep) -> NodeDetail:
    with db.read() as session:
        node = service.get_node(session, node_id=node_id)
        summary = allocation_service.node_summaries(session, node_ids=[node.id])[node.id]
        standing = lifecycle.node_standing(session, node=node, limits=maintenance.caps)
        base = NodeRead.model_validate(node).model_dump()
        return NodeDetail(**{**base, **summary, **standing})
