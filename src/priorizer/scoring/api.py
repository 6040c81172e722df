"""Scoring routes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from priorizer.catalog.schemas import AssetId
from priorizer.scoring import service
from priorizer.scoring.schemas import PriorityExplanation
from priorizer.web.deps import DbDep, NowDep

router = APIRouter(tags=["scoring"])


@router.get(
    "/assets/{asset_id}/priority",
    response_model=PriorityExplanation,
    summary="Why an asset has its priority: each scoring factor's points, and the result",
    responses={404: {"description": "No such asset."}},
)
def explain_priority(
    asset_id: AssetId, request: Request, db: DbDep, now: NowDep
) -> PriorityExplanation:
    with db.read() as session:
        explanation = service.explain(
            session, asset_id=asset_id, policy=request.app.state.scoring, now=now
        )
    return PriorityExplanation.model_validate(explanation)
