"""CKAN packages to datasets and assets (`harvest.mapping`): every function on a table of what
portals really send, then the recorded portal answers in tests/fixtures/ckan/, then a property:
no input makes the mapping raise or yield an asset a node could not fetch."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from priorizer.catalog.models import url_key
from priorizer.harvest.mapping import (
    MAX_FORMAT,
    MAX_NAME,
    AssetRecord,
    DatasetRecord,
    asset_url,
    file_format,
    map_dataset,
    map_packages,
    map_resource,
    organization_name,
    packages_in,
    parse_time,
    size_mb,
    tag_names,
    views,
)
from tests.support.ckan_data import FIXTURES, load_fixture

MB = 1024 * 1024
ENVIDAT_2021 = "envidat_current_package_list_with_resources_2021.json.gz"
DATAGOV_2020 = "datagov_package_search_group_agriculture_2020.json"
ASSET_SCHEMES = {"http", "https", "ftp"}


# --- size_mb ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1048576, 1.0),
        ("1048576", 1.0),
        (" 2,097,152 ", 2.0),
        (1.5e6, 1.5e6 / MB),
        (1, 1 / MB),
        ("1e3", 1000 / MB),
        (10_004_794_304, 10_004_794_304 / MB),  # the 10 GB file of envidat_package_search_2026
        (1024**5, float(1024**3)),  # 1 PiB: the largest plausible size, kept
    ],
)
def test_size_mb_reads_bytes_as_megabytes(value: Any, expected: float) -> None:
    assert size_mb(value) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        None,
        "N/A",
        "1.5 GB",
        "Varies",  # data.gov's size_text style
        -5,
        "-5",
        0,
        "0",
        0.0,
        10**20,  # 100 exabytes
        1024**5 + 1,
        float("nan"),
        "nan",
        float("inf"),
        "inf",
        float("-inf"),
        True,
        False,
        [],
        {},
        [1048576],
        {"bytes": 1048576},
    ],
)
def test_size_mb_is_unknown_never_zero_for_junk(value: Any) -> None:
    assert size_mb(value) is None


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["10**400", "-10**400"])
def test_size_mb_of_an_int_too_large_for_a_float_is_unknown(value: int) -> None:
    assert size_mb(value) is None
    mapped = map_packages([{"id": "d", "resources": [{"url": "http://h/f", "size": value}]}])
    assert [a.size_mb for a in mapped.assets] == [None]


# --- asset_url --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.org/a.csv", "http://example.org/a.csv"),
        ("https://example.org/a.csv", "https://example.org/a.csv"),
        ("ftp://ftp.wsl.ch/pub/smm/readme.txt", "ftp://ftp.wsl.ch/pub/smm/readme.txt"),
        ("FTP://ftp.wsl.ch/pub/smm/readme.txt", "FTP://ftp.wsl.ch/pub/smm/readme.txt"),
        ("HTTPS://Example.org/A.csv", "HTTPS://Example.org/A.csv"),
        ("ftp://anonymous@envidatrepo.wsl.ch/x/", "ftp://anonymous@envidatrepo.wsl.ch/x/"),
        ("http://[::1]:8080/a", "http://[::1]:8080/a"),
        ("  https://example.org/a.csv \n", "https://example.org/a.csv"),
        ("http://example.org/my file.csv", "http://example.org/my%20file.csv"),
        ("http://example.org/a b c", "http://example.org/a%20b%20c"),
        ("http://example.org/already%20escaped", "http://example.org/already%20escaped"),
    ],
)
def test_asset_url_keeps_http_https_and_ftp(value: str, expected: str) -> None:
    assert asset_url(value) == (expected, "")


@pytest.mark.parametrize(
    ("value", "scheme"),
    [
        ("mailto:data@example.org", "mailto"),
        ("file:///etc/passwd", "file"),
        ("javascript:alert(1)", "javascript"),
        ("data:text/csv,a,b", "data"),
        ("gopher://example.org/1", "gopher"),
        ("MAILTO:data@example.org", "mailto"),
    ],
)
def test_asset_url_refuses_other_schemes_naming_them(value: str, scheme: str) -> None:
    url, why = asset_url(value)
    assert url is None
    assert scheme in why.lower()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "no URL"),
        (None, "no URL"),
        ("   ", "no URL"),
        ("\t\n", "no URL"),
        (42, "no URL"),
        (["http://example.org/a"], "no URL"),
        ("/download/x", "relative URL"),
        ("download/x.csv", "relative URL"),
        ("//example.org/x.csv", "relative URL"),
    ],
)
def test_asset_url_refuses_missing_and_relative_urls(value: Any, why: str) -> None:
    assert asset_url(value) == (None, why)


@pytest.mark.parametrize("value", ["http://", "https:///data/x.csv", "ftp://", "http://:80/x"])
def test_asset_url_refuses_a_url_without_a_host(value: str) -> None:
    url, why = asset_url(value)
    assert url is None
    assert why  # a reason, whatever its wording


def test_asset_url_refuses_a_malformed_url() -> None:
    url, why = asset_url("http://[::1/x")  # urlsplit raises: unclosed IPv6 bracket
    assert url is None
    assert why


@pytest.mark.parametrize("value", ["http://exa\nmple.org/a\tb", "https://example.org/a\r\nb.csv"])
def test_asset_url_never_keeps_control_characters(value: str) -> None:
    url, _ = asset_url(value)
    assert url is None or not any(ch in url for ch in "\t\r\n")


# --- file_format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".zip", "ZIP"),
        ("zip", "ZIP"),
        (" ZIP ", "ZIP"),
        ("Zip", "ZIP"),
        (". csv", "CSV"),
        ("tar.gz", "TAR.GZ"),
        ("netcdf4 cf-1.6", "NETCDF4 CF-1.6"),
        ("", None),
        ("   ", None),
        (".", None),
        (None, None),
        (5, None),
        (["ZIP"], None),
        ("x" * 300, "X" * MAX_FORMAT),
    ],
)
def test_file_format(value: Any, expected: str | None) -> None:
    assert file_format(value) == expected


# --- organization_name, tag_names, views ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"name": "noaa-gov", "title": "NOAA"}, "noaa-gov"),
        ({"name": " wsl ", "title": "WSL"}, "wsl"),
        ({"title": "Only a title"}, "Only a title"),
        ({"name": "", "title": "A title"}, "A title"),
        ({"name": None, "title": None}, None),
        ({}, None),
        ("noaa-gov", "noaa-gov"),
        ("  ", None),
        (None, None),
        (7, None),
        (["noaa-gov"], None),
    ],
)
def test_organization_name(value: Any, expected: str | None) -> None:
    assert organization_name(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            [{"name": "Snow"}, {"name": "snow"}, {"name": "avalanche"}, {"name": "SNOW"}],
            ("avalanche", "Snow"),
        ),
        (["Glacier", {"name": "climate"}, "glacier"], ("climate", "Glacier")),
        (
            [{"display_name": "Permafrost"}, {"name": "", "display_name": "ice"}],
            ("ice", "Permafrost"),
        ),
        ([{"name": " b "}, {"name": "A"}, {"name": "c"}], ("A", "b", "c")),
        ([None, 5, {}, {"name": ""}, "  ", [], {"name": 3}], ()),
        ([], ()),
        (None, ()),
        ("snow", ()),
        ({"name": "snow"}, ()),
    ],
)
def test_tag_names_once_each_whatever_the_case_and_sorted(value: Any, expected: tuple) -> None:
    assert tag_names(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"total": 5886, "recent": 55}, 5886),
        ({"total": 0, "recent": 0}, 0),
        ({"total": -1}, None),
        ({"total": True}, None),
        ({"total": "5"}, None),
        ({"total": 1.5}, None),
        ({"total": None}, None),
        ({"recent": 5}, None),
        ({}, None),
        (None, None),
        (5, None),
    ],
)
def test_views(value: Any, expected: int | None) -> None:
    assert views(value) == expected


# --- parse_time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-09-01T21:15:07.321876", datetime(2016, 9, 1, 21, 15, 7, 321876, tzinfo=UTC)),
        ("2016-09-01T21:15:07", datetime(2016, 9, 1, 21, 15, 7, tzinfo=UTC)),
        ("2018-02-02T02:02:02.500Z", datetime(2018, 2, 2, 2, 2, 2, 500000, tzinfo=UTC)),
        ("2018-02-02T02:02:02Z", datetime(2018, 2, 2, 2, 2, 2, tzinfo=UTC)),
        ("2020-01-01T12:00:00+02:00", datetime(2020, 1, 1, 10, 0, tzinfo=UTC)),
        ("2020-01-01T12:00:00-05:00", datetime(2020, 1, 1, 17, 0, tzinfo=UTC)),
        ("2020-01-01T12:00:00.25+00:00", datetime(2020, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2020-01-01", datetime(2020, 1, 1, tzinfo=UTC)),
        ("  2020-01-01T00:00:00  ", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time_gives_aware_utc(value: str, expected: datetime) -> None:
    moment = parse_time(value)
    assert moment == expected
    assert moment is not None and moment.tzinfo == UTC
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["", "   ", None, "yesterday", "2020-13-01", "2020-02-30T00:00:00", 1_600_000_000, []]
)
def test_parse_time_of_junk_is_none(value: Any) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_time_out_of_range_once_in_utc_is_none(value: str) -> None:
    assert parse_time(value) is None
    assert map_packages([{"id": "d", "metadata_modified": value}]).datasets[0].modified_at is None


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


def _accounted(mapped: Any) -> int:
    return len(mapped.assets) + mapped.shared_urls + sum(mapped.skipped.values())


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
    assert _accounted(mapped) == 4


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
    assert _accounted(mapped) == total
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


# --- property: nothing makes the mapping raise or yield an unusable asset ---------------------

# Ints are kept within float range: past it, see test_size_mb_of_an_int_too_large_for_a_float...
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**1023), max_value=2**1023)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
urls = st.builds(
    lambda scheme, sep, host, path: f"{scheme}{sep}{host}{path}",
    st.sampled_from(["http", "https", "ftp", "FTP", "HTTP", "mailto", "file", "data", "", " "]),
    st.sampled_from(["://", ":", ":///", "//", "", "://user@"]),
    st.sampled_from(["", "example.org", "h", "[::1]", "[::1", " host ", ":80", "ex ample.org"]),
    st.text(max_size=15),
)
sizes = (
    json_values
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.from_regex(r"\s*-?[0-9,]{0,20}(\.[0-9]*)?(e[0-9]{1,3})?\s*", fullmatch=True)
)
# Years kept clear of datetime's ends: see test_parse_time_out_of_range_once_in_utc_is_none.
times = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)).map(
    datetime.isoformat
) | st.builds(
    lambda moment, zone: moment.isoformat() + zone,
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.sampled_from(["Z", "+00:00", "+14:00", "-12:30", "+99:00", ""]),
)
resources = st.fixed_dictionaries(
    {},
    optional={
        "url": urls | json_values,
        "size": sizes,
        "format": json_values,
        "name": json_values,
    },
)
packages = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=5) | json_values,
        "resources": st.lists(resources | json_values, max_size=5) | json_values,
        "organization": json_values,
        "tags": json_values,
        "metadata_modified": times | json_values,
        "tracking_summary": json_values,
        "title": json_values,
    },
)


def _expected_accounting(items: list[Any]) -> int:
    total = 0
    for item in items:
        if map_dataset(item) is None:
            total += 1  # "package without an id"
        elif isinstance(item.get("resources"), list):
            total += len(item["resources"])
    return total


@settings(max_examples=300, deadline=None)
@given(st.lists(packages | json_values, max_size=6))
def test_map_packages_never_raises_and_every_asset_is_fetchable(items: list[Any]) -> None:
    mapped = map_packages(items)
    assert _accounted(mapped) == _expected_accounting(items)
    assert len({a.id for a in mapped.assets}) == len(mapped.assets)
    for asset in mapped.assets:
        parts = urlsplit(asset.url)
        assert parts.scheme.lower() in ASSET_SCHEMES
        assert parts.hostname
        assert " " not in asset.url
        assert asset.id == url_key(asset.url)
        assert asset.size_mb is None or (math.isfinite(asset.size_mb) and asset.size_mb > 0)
        assert asset.name
        assert asset.format is None or (asset.format and asset.format == asset.format.upper())
    for dataset in mapped.datasets:
        assert dataset.id
        assert dataset.modified_at is None or dataset.modified_at.utcoffset() == timedelta(0)


@settings(max_examples=200, deadline=None)
@given(json_values | st.lists(packages, max_size=3) | packages)
def test_packages_in_never_raises(document: Any) -> None:
    found = packages_in(document)
    assert found is None or isinstance(found, list)
