"""The recorded DCAT-US data.json catalogs (tests/fixtures/dcat/, see SOURCES.md there), and
what each holds, counted here straight from the JSON (not by the code under test)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dcat"
CATALOGS = ("cms_2025-01-31", "dhs_2025-02-01", "doe-energy_2025-02-04", "usaid_2025-02-01")


def catalog_bytes(name: str) -> bytes:
    return gzip.decompress((FIXTURES / f"{name}.data.json.gz").read_bytes())


def catalog(name: str) -> dict[str, Any]:
    return json.loads(catalog_bytes(name))


@dataclass(frozen=True)
class Expected:
    datasets: int
    distributions: int
    urls: set[str]  # one asset per URL
    page_urls: set[str]  # URLs only ever given as accessURL
    without_url: int


def expected(document: dict[str, Any]) -> Expected:
    distributions, without_url = 0, 0
    files: set[str] = set()
    pages: set[str] = set()
    for dataset in document["dataset"]:
        for entry in dataset.get("distribution") or []:
            distributions += 1
            url = (entry.get("downloadURL") or "").strip()
            target = files
            if not url:
                url, target = (entry.get("accessURL") or "").strip(), pages
            if not url:
                without_url += 1
                continue
            target.add(url.replace(" ", "%20"))
    return Expected(
        datasets=len({d["identifier"] for d in document["dataset"]}),
        distributions=distributions,
        urls=files | pages,
        page_urls=pages - files,
        without_url=without_url,
    )
