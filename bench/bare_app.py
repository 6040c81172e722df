"""The yardstick: a bare FastAPI endpoint of /allocate's shape, with no database behind it.

Same request and response models as the real endpoint; answers with BARE_ITEMS fixed items.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from fastapi import FastAPI

from priorizer.allocation.schemas import AllocatedAsset, AllocateRequest

ITEMS = int(os.environ.get("BARE_ITEMS", "10"))
app = FastAPI()


@app.post("/allocate", response_model=list[AllocatedAsset])
def allocate(body: AllocateRequest) -> list[AllocatedAsset]:
    node_id = body.node_id or "node-x"
    expires_at = datetime.now(UTC)
    return [
        AllocatedAsset(
            id=f"a{i:07d}",
            url=f"https://data.example.org/files/{i}.nc",
            size_mb=12.5,
            priority=7,
            name=f"file-{i}.nc",
            dataset_id="dataset-1",
            format="NC",
            allocation_id=i,
            node_id=node_id,
            expires_at=expires_at,
            reserved_mb=12.5,
        )
        for i in range(ITEMS)
    ]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}
