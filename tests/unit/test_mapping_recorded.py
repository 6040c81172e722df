"""CKAN packages to datasets and assets (`harvest.mapping`): the recorded portal answers in
tests/fixtures/ckan/."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from priorizer.harvest.mapping import MAX_NAME, map_packages, packages_in
from tests.support.ckan_data import FIXTURES, load_fixture
from tests.support.mapping import MB, accounted

ENVIDAT_2021 = "envidat_current_package_list_with_resources_2021.json.gz"
DATAGOV_2020 = "datagov_package_search_group_agriculture_2020.json"


# --- the recorded portal answers --------------------------------------------------------------


def _resources(packages: list[dict]) -> list[tuple[str, dict]]:
    return [(p["id"], r) for p in packages for r in p.get("resources") or []]


@pytest.fixture(scope="module")
def envidat() -> tuple[list[dict], Any]:
    packages = load_fixture(ENVIDAT_2021)["result"]
    return packages, map_packages(packages)


def test_envidat_2021_every_dataset_and_resource_accounted_for(envidat) -> None:
    packages, mapped = envidat
    assert len(packages) == 354
    assert len(mapped.datasets) == 354
    assert [d.id for d in mapped.datasets] == [p["id"] for p in packages]
    total = len(_resources(packages))
    assert total > 1000  # the file's 1,193, counted from the file below
    assert accounted(mapped) == total
    assert len({a.id for a in mapped.assets}) == len(mapped.assets)


def test_envidat_2021_empty_urls_counted_as_no_url(envidat) -> None:
    packages, mapped = envidat
    empty = sum(1 for _, r in _resources(packages) if not (r.get("url") or "").strip())
    assert empty == 7
    assert mapped.skipped == Counter({"no URL": 7})  # every other URL is http(s) or ftp


def test_envidat_2021_one_asset_per_distinct_usable_url(envidat) -> None:
    packages, mapped = envidat
    urls = {
        r["url"].strip().replace(" ", "%20")
        for _, r in _resources(packages)
        if (r.get("url") or "").strip()
    }
    assert {a.url for a in mapped.assets} == urls
    assert len(mapped.assets) == len(urls)


def test_envidat_2021_ftp_urls_become_assets(envidat) -> None:
    packages, mapped = envidat
    ftp = {r["url"] for _, r in _resources(packages) if r["url"].lower().startswith("ftp://")}
    assert len(ftp) == 7
    assert ftp <= {a.url for a in mapped.assets}


def test_envidat_2021_url_with_a_space_is_escaped(envidat) -> None:
    packages, mapped = envidat
    spaced = [r["url"] for _, r in _resources(packages) if " " in r["url"].strip()]
    assert len(spaced) == 1
    assert all(" " not in a.url for a in mapped.assets)
    escaped = [a for a in mapped.assets if a.url == spaced[0].replace(" ", "%20")]
    assert len(escaped) == 1
    assert "bgLay%20er" in escaped[0].url


def test_envidat_2021_url_shared_by_many_resources_is_one_asset(envidat) -> None:
    packages, mapped = envidat
    listed = Counter(r["url"] for _, r in _resources(packages) if r["url"].strip())
    url, times = listed.most_common(1)[0]
    assert times == 37
    assert mapped.shared_urls == sum(n - 1 for n in listed.values())
    (asset,) = [a for a in mapped.assets if a.url == url]
    last_dataset, last = [(d, r) for d, r in _resources(packages) if r["url"] == url][-1]
    assert asset.dataset_id == last_dataset
    assert asset.name == (last.get("name") or "").strip()[:MAX_NAME]
    known = [r["size"] for _, r in _resources(packages) if r["url"] == url and r.get("size")]
    assert asset.size_mb == (known[-1] / MB if known else None)


def test_envidat_2021_each_asset_as_its_listings_describe_it(envidat) -> None:
    """The last listing of a URL gives its name, format and dataset; the last size known, its
    size (a listing without one does not forget it)."""
    packages, mapped = envidat
    listings: dict[str, list[tuple[str, dict]]] = {}
    for dataset_id, r in _resources(packages):
        if r["url"].strip():
            listings.setdefault(r["url"].strip().replace(" ", "%20"), []).append((dataset_id, r))
    assert len(mapped.assets) == len(listings)
    for asset in mapped.assets:
        dataset_id, last = listings[asset.url][-1]
        known = [r["size"] for _, r in listings[asset.url] if r.get("size")]
        assert asset.size_mb == (known[-1] / MB if known else None)
        fmt = (last.get("format") or "").strip().lstrip(".").strip().upper()
        assert asset.format == (fmt or None)
        assert asset.dataset_id == dataset_id
        assert asset.name == ((last.get("name") or "").strip() or asset.name)
    assert sum(a.size_mb is not None for a in mapped.assets) > 500
    formats = {a.format for a in mapped.assets}
    assert {"ZIP", "URL", "CSV"} <= formats
    assert not any(f and (f.startswith(".") or f != f.upper()) for f in formats)


def test_datagov_2020_null_sizes_are_unknown() -> None:
    document = load_fixture(DATAGOV_2020)
    packages = document["result"]["results"]
    assert {r.get("size") for _, r in _resources(packages)} == {None}
    mapped = map_packages(packages)
    assert len(mapped.datasets) == 18
    assert len(mapped.assets) == len(_resources(packages))
    assert all(a.size_mb is None for a in mapped.assets)
    assert sum(d.organization == "noaa-gov" for d in mapped.datasets) == 7


def test_datagov_2020_dataset_fields() -> None:
    mapped = map_packages(load_fixture(DATAGOV_2020)["result"]["results"])
    (dataset,) = [d for d in mapped.datasets if d.id == "DOC-4271"]  # a non-UUID id, kept
    assert dataset.organization == "noaa-gov"
    assert dataset.views == 5886
    assert dataset.modified_at == datetime(2016, 9, 1, 21, 15, 7, 321876, tzinfo=UTC)


def test_envidat_2026_ten_gigabyte_file_keeps_its_size() -> None:
    mapped = map_packages(packages_in(load_fixture("envidat_package_search_2026.json")) or [])
    sizes = {a.url.rsplit("/", 1)[-1]: a.size_mb for a in mapped.assets}
    assert sizes["snowpack_simulations.zip"] == pytest.approx(10_004_794_304 / MB)


# Each fixture file: where its packages are in the document (None: it holds none), how many.
PACKAGE_FILES: dict[str, tuple[Any, int]] = {
    "ckan_package_show_404_error.json": (None, 0),
    "ckan_package_show_datagov_copy.json": (lambda doc: [doc["result"]], 1),
    "datagov_bare_package_list_2015.json": (lambda doc: doc, 3),
    DATAGOV_2020: (lambda doc: doc["result"]["results"], 18),
    ENVIDAT_2021: (lambda doc: doc["result"], 354),
    # an organisation: its `packages` lack resources, and it is not a package answer
    "envidat_organization_show_2026.json": (None, 0),
    "envidat_package_search_2026.json": (lambda doc: doc["result"]["results"], 2),
    "envidat_package_show_2026.json": (lambda doc: [doc["result"]], 1),
}
ORGANIZATION_LIST = "envidat_organization_list_2026.json"


def test_every_fixture_file_is_checked_by_packages_in() -> None:
    on_disk = {path.name for path in [*FIXTURES.glob("*.json"), *FIXTURES.glob("*.json.gz")]}
    assert on_disk == set(PACKAGE_FILES) | {ORGANIZATION_LIST}


@pytest.mark.parametrize("name", sorted(PACKAGE_FILES))
def test_packages_in_every_fixture(name: str) -> None:
    document = load_fixture(name)
    where, count = PACKAGE_FILES[name]
    found = packages_in(document)
    if where is None:
        assert found is None
        return
    assert found == where(document)
    assert found is not None and len(found) == count
    assert all(isinstance(p, dict) and "id" in p and "resources" in p for p in found)


def test_packages_in_the_404_error_is_none() -> None:
    document = load_fixture("ckan_package_show_404_error.json")
    assert document["success"] is False
    assert packages_in(document) is None


def test_packages_in_the_bare_2015_list() -> None:
    found = packages_in(load_fixture("datagov_bare_package_list_2015.json"))
    assert found is not None
    assert [p["id"] for p in found] == [
        "8e81ab5c-d959-4401-8ac1-d73f1820c55d",
        "c7ef46a1-559f-4fb5-99c4-8797758e1537",
        "805c53bf-bdf6-4178-9868-1c5742f942dd",
    ]
    assert len(map_packages(found).assets) == 3


def test_packages_in_an_organization_list_is_none() -> None:
    document = load_fixture(ORGANIZATION_LIST)
    assert all(org.get("is_organization") for org in document["result"])
    assert packages_in(document) is None


def test_packages_in_with_and_without_the_envelope() -> None:
    package = {"id": "p", "resources": []}
    search = {"count": 1, "results": [package]}
    assert packages_in(search) == [package]
    assert packages_in({"success": True, "result": search}) == [package]
    assert packages_in({"help": "h", "success": True, "result": search}) == [package]
    assert packages_in(package) == [package]
    assert packages_in({"success": True, "result": package}) == [package]
    assert packages_in([package]) == [package]
    assert packages_in({"success": True, "result": [package]}) == [package]
    assert packages_in([]) == []


@pytest.mark.parametrize(
    "document",
    [
        None,
        "text",
        5,
        {},
        {"success": False, "result": [{"id": "p", "resources": []}]},
        {"success": True, "result": None},
        {"success": True, "result": "x"},
        {"id": "p"},  # not a package: no resources
        {"count": 3, "results": "not a list"},
    ],
)
def test_packages_in_of_what_holds_no_packages(document: Any) -> None:
    assert packages_in(document) is None
