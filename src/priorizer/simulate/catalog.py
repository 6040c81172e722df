"""Catalogs to simulate: generated from a seed, or read from a `ckan_data.json` file (an
operator's own, from `priorizer export-json`). A generated one is written in that shape too, so
that a real server can load the very same catalog (`priorizer import-json FILE`)."""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

from priorizer.catalog.service import NewAsset
from priorizer.errors import Invalid
from priorizer.queue.policy import PRIORITY_MAX, PRIORITY_MIN
from priorizer.seed import service as seed_service
from priorizer.simulate.measures import Item
from priorizer.simulate.scenario import CatalogSpec

HOST = "https://simulated.example.org"


def generate(spec: CatalogSpec, *, seed: int) -> list[Item]:
    """`spec.assets` assets: sizes log-normal around the median, capped; priorities a rounded
    normal draw clamped to 1-10. The same seed gives the same catalog."""
    draw = random.Random(f"{seed}:catalog")
    mu = math.log(spec.size_median_mb)
    items = []
    for n in range(spec.assets):
        size = min(draw.lognormvariate(mu, spec.size_sigma), spec.size_cap_mb)
        priority = round(draw.normalvariate(spec.priority_mean, spec.priority_sd))
        items.append(
            Item(
                id=f"sim-{n:07d}",
                size_mb=round(size, 3),  # to the kilobyte: shorter files, same figures
                priority=min(PRIORITY_MAX, max(PRIORITY_MIN, priority)),
            )
        )
    return items


def new_assets(items: Sequence[Item]) -> list[NewAsset]:
    """The items as the catalog service loads them."""
    return [
        NewAsset(
            id=item.id,
            url=f"{HOST}/{item.id}.bin",
            name=f"{item.id}.bin",
            size_mb=item.size_mb,
            priority=item.priority,
        )
        for item in items
    ]


def read_seed_file(path: Path) -> list[NewAsset]:
    """The assets of a `ckan_data.json` file, checked as `priorizer import-json` checks it."""
    rows = seed_service.parse_assets(seed_service.read_json(path), source=str(path))
    if not rows:
        raise Invalid(f"{path}: no assets in it")
    return [
        NewAsset(
            id=row.id,
            url=row.url,
            name=row.name or row.id,
            size_mb=row.size_mb,
            priority=row.priority,
        )
        for row in rows
    ]


def items_of(assets: Sequence[NewAsset], *, unknown_size_mb: float) -> list[Item]:
    """The assets as the measures see them: an unknown size is the size assumed for it (what
    its lease reserves, and what a simulated node stores)."""
    return [
        Item(a.id, unknown_size_mb if a.size_mb is None else a.size_mb, a.priority) for a in assets
    ]


def write_seed_file(path: Path, items: Sequence[Item]) -> None:
    """The catalog as `ckan_data.json` rows, written whole or not at all."""
    rows = [
        {"id": a.id, "url": a.url, "name": a.name, "size_mb": a.size_mb, "priority": a.priority}
        for a in new_assets(items)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("[\n" + ",\n".join(json.dumps(row) for row in rows) + "\n]\n")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a catalog is not
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
