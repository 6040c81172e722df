"""CKAN packages to datasets and assets (`harvest.mapping`): map_dataset, map_resource and
map_packages on a table of what portals really send."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from priorizer.catalog.models import url_key
from priorizer.harvest.mapping import (
    MAX_NAME,
    AssetRecord,
    DatasetRecord,
    map_dataset,
    map_packages,
    map_resource,
)
from tests.support.mapping import MB, accounted

# --- map_dataset, map_resource ----------------------------------------------------------------


def test_map_dataset_reads_every_field() -> None:
    package = {
        "id": " DOC-4271 ",
        "name": "weather-feeds",
        "title": "  Weather feeds ",
        "organization": {"name": "noaa-gov", "title": "NOAA"},
        "tags": [{"name": "Weather"}, {"name": "weather"}, {"name": "alerts"}],
        "metadata_modified": "2016-09-01T21:15:07.321876",
        "tracking_summary": {"total": 5886, "recent": 55},
        "resources": [],
    }
    assert map_dataset(package) == DatasetRecord(
        id="DOC-4271",
        name="weather-feeds",
        title="Weather feeds",
        organization="noaa-gov",
        tags=("alerts", "Weather"),
        modified_at=datetime(2016, 9, 1, 21, 15, 7, 321876, tzinfo=UTC),
        views=5886,
    )


def test_map_dataset_with_only_an_id() -> None:
    assert map_dataset({"id": "x"}) == DatasetRecord(
        id="x", name=None, title=None, organization=None, tags=(), modified_at=None, views=None
    )


@pytest.mark.parametrize(
    "package", [None, "x", 5, [], {}, {"id": ""}, {"id": "   "}, {"id": None}, {"id": 42}]
)
def test_map_dataset_needs_an_id(package: Any) -> None:
    assert map_dataset(package) is None


def test_map_resource_reads_every_field() -> None:
    resource = {
        "url": " https://envidat.ch/download/a file.zip ",
        "name": " Snow depth ",
        "format": ".zip",
        "size": "2,097,152",
    }
    url = "https://envidat.ch/download/a%20file.zip"
    assert map_resource(resource, dataset_id="d1") == (
        AssetRecord(
            id=url_key(url), url=url, name="Snow depth", format="ZIP", size_mb=2.0, dataset_id="d1"
        ),
        "",
    )


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://h.org/data/file.csv", "file.csv"),
        ("https://h.org/data/folder/", "folder"),
        ("https://h.org", "h.org"),
        ("https://h.org/", "h.org"),
    ],
)
def test_map_resource_without_a_name_is_named_after_its_url(url: str, name: str) -> None:
    asset, _ = map_resource({"url": url, "name": "  "}, dataset_id="d")
    assert asset is not None
    assert asset.name == name


def test_map_resource_name_is_cut_to_max_name() -> None:
    asset, _ = map_resource({"url": "http://h.org/f", "name": "n" * 2000}, dataset_id="d")
    assert asset is not None
    assert asset.name == "n" * MAX_NAME


def test_map_resource_unknowns_stay_unknown() -> None:
    asset, _ = map_resource({"url": "http://h.org/f", "size": "N/A", "format": ""}, dataset_id="d")
    assert asset is not None
    assert (asset.size_mb, asset.format) == (None, None)


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        (None, "resource is not an object"),
        ("http://h.org/f", "resource is not an object"),
        ([], "resource is not an object"),
        ({}, "no URL"),
        ({"url": ""}, "no URL"),
        ({"url": None, "name": "x"}, "no URL"),
        ({"url": "/download/x"}, "relative URL"),
    ],
)
def test_map_resource_says_why_it_is_not_an_asset(resource: Any, why: str) -> None:
    assert map_resource(resource, dataset_id="d") == (None, why)


# --- map_packages -----------------------------------------------------------------------------


def test_map_packages_counts_every_resource_that_is_not_an_asset_by_why() -> None:
    packages = [
        {
            "id": "a",
            "resources": [
                {"url": "http://h.org/1"},
                {"url": ""},
                {"url": None},
                {"url": "mailto:x@h.org"},
                {"url": "/download/x"},
                "junk",
                {"url": "http://"},
            ],
        },
        {"title": "no id", "resources": [{"url": "http://h.org/2"}]},
        "not a package",
        {"id": "b", "resources": "not a list"},
        {"id": "c"},
    ]
    mapped = map_packages(packages)
    assert [d.id for d in mapped.datasets] == ["a", "b", "c"]
    assert [a.url for a in mapped.assets] == ["http://h.org/1"]
    assert mapped.shared_urls == 0
    skipped = dict(mapped.skipped)
    assert skipped.pop("no URL") == 2
    assert skipped.pop("relative URL") == 1
    assert skipped.pop("resource is not an object") == 1
    assert skipped.pop("package without an id") == 2
    assert sorted(skipped.values()) == [1, 1]  # mailto:, no host: one each, whatever the wording
    assert any("mailto" in why for why in skipped)


def test_map_packages_one_asset_per_url_described_by_the_last_listing() -> None:
    url = "https://h.org/shared.csv"
    packages = [
        {"id": "a", "resources": [{"url": url, "name": "first", "size": MB, "format": "csv"}]},
        {"id": "b", "resources": [{"url": "https://h.org/other.csv"}]},
        {"id": "c", "resources": [{"url": url, "name": "second", "size": 2 * MB}]},
        {"id": "d", "resources": [{"url": f"  {url} ", "name": "last", "size": 3 * MB}]},
    ]
    mapped = map_packages(packages)
    assert len(mapped.datasets) == 4
    assert mapped.shared_urls == 2
    shared = [a for a in mapped.assets if a.url == url]
    assert shared == [
        AssetRecord(id=url_key(url), url=url, name="last", format=None, size_mb=3.0, dataset_id="d")
    ]
    assert len(mapped.assets) == 2
    assert accounted(mapped) == 4


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([MB, None], 1.0),  # a later listing without a size does not forget the known one
        ([MB, "N/A", ""], 1.0),
        ([MB, 2 * MB], 2.0),  # the last size known wins
        ([MB, None, 3 * MB, None], 3.0),
        ([None, 2 * MB], 2.0),
        ([None, None], None),
    ],
)
def test_map_packages_shared_url_keeps_the_last_size_known(
    sizes: list[Any], expected: float | None
) -> None:
    url = "https://h.org/shared.csv"
    packages = [
        {"id": f"d{i}", "resources": [{"url": url, "name": f"n{i}", "size": size}]}
        for i, size in enumerate(sizes)
    ]
    (asset,) = map_packages(packages).assets
    assert asset.size_mb == expected
    assert (asset.name, asset.dataset_id) == (f"n{len(sizes) - 1}", f"d{len(sizes) - 1}")


def test_map_packages_same_url_once_escaped_is_one_asset() -> None:
    packages = [
        {"id": "a", "resources": [{"url": "http://h.org/a b.csv", "name": "spaced"}]},
        {"id": "b", "resources": [{"url": "http://h.org/a%20b.csv", "name": "escaped"}]},
    ]
    mapped = map_packages(packages)
    assert [(a.url, a.name, a.dataset_id) for a in mapped.assets] == [
        ("http://h.org/a%20b.csv", "escaped", "b")
    ]
    assert mapped.shared_urls == 1


def test_map_packages_asset_ids_are_url_keys() -> None:
    mapped = map_packages(
        [{"id": "a", "resources": [{"url": f"https://h.org/{i}.csv"} for i in range(5)]}]
    )
    assert [a.id for a in mapped.assets] == [url_key(f"https://h.org/{i}.csv") for i in range(5)]


def test_map_packages_of_nothing() -> None:
    mapped = map_packages([])
    assert (mapped.datasets, mapped.assets, mapped.skipped, mapped.shared_urls) == (
        [],
        [],
        Counter(),
        0,
    )
