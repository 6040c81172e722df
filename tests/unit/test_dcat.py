"""DCAT-US data.json mapping (harvest.dcat): pure rules, many cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from priorizer.harvest.dcat import (
    V1_0,
    V1_1,
    format_of,
    map_datasets,
    map_distribution,
    parse_modified,
)

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-10-04", datetime(2018, 10, 4, tzinfo=UTC)),
        ("2015", datetime(2015, 1, 1, tzinfo=UTC)),
        ("2015-06", datetime(2015, 6, 1, tzinfo=UTC)),
        ("2024-02-22T12:25:27-05:00", datetime(2024, 2, 22, 17, 25, 27, tzinfo=UTC)),
        ("2014-02-27T18:35:43.965018", datetime(2014, 2, 27, 18, 35, 43, 965018, tzinfo=UTC)),
        ("2020-01-01T00:00:00.000Z", datetime(2020, 1, 1, tzinfo=UTC)),
        ("R/P1D", NOW),  # updated daily: as fresh as the harvest
        ("R/P1Y", NOW),
        ("R/P3.5D", NOW),
        ("R5/2008-03-01T13:00:00Z/P1Y2M10DT2H30M", NOW),
        ("2010-01-01/2012-06-30", datetime(2012, 6, 30, tzinfo=UTC)),
        ("2010-01-01/P1Y", datetime(2010, 1, 1, tzinfo=UTC)),
        ("irregular", None),
        ("", None),
        (None, None),
        (2015, None),
        ("Rubbish", None),
    ],
)
def test_modified_in_every_form_agencies_use(value, expected):
    assert parse_modified(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "media", "expected"),
    [
        ("csv", None, "CSV"),
        (None, "text/csv", "CSV"),
        (None, "application/zip", "ZIP"),
        (None, "application/vnd.ms-excel", "XLS"),
        (None, "application/vnd.google-earth.kmz+xml", "KMZ"),
        (None, "application/x-netcdf", "NETCDF"),
        (None, "type/csv", "CSV"),
        (None, "text/csv; charset=utf-8", "CSV"),
        ("Zipped CSV", "application/zip", "ZIPPED CSV"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_format_from_format_or_media_type(text, media, expected):
    assert format_of(text, media) == expected


def test_download_url_is_a_file_access_url_alone_a_page_to_discover():
    download, is_page, _ = map_distribution(
        {"downloadURL": "https://x.gov/a.csv", "accessURL": "https://x.gov/a", "byteSize": 2048},
        dataset_id="d",
        version=V1_1,
    )
    page, page_flag, _ = map_distribution(
        {"accessURL": "https://x.gov/api", "format": "API"}, dataset_id="d", version=V1_1
    )
    assert download is not None and download.url == "https://x.gov/a.csv" and not is_page
    assert download.size_mb == 2048 / 1024 / 1024
    assert page is not None and page.url == "https://x.gov/api" and page_flag
    assert page.format == "API"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"@type": "dcat:Distribution"}, "distribution without a URL"),
        ({"downloadURL": "mailto:data@x.gov"}, "mailto: URL"),
        ({"accessURL": "/relative/page"}, "relative URL"),
        ("https://x.gov/a.csv", "distribution is not an object"),
    ],
)
def test_distributions_that_are_not_assets_say_why(entry, why):
    asset, _, reason = map_distribution(entry, dataset_id="d", version=V1_1)
    assert asset is None and reason == why


def test_version_1_0_access_url_is_the_file_and_web_service_the_page():
    items = [
        {
            "identifier": "one",
            "title": "v1.0 dataset",
            "publisher": "Agency of Examples",
            "keyword": "climate, ocean",
            "modified": "2013-05-01",
            "accessURL": "https://x.gov/one.zip",
            "webService": "https://x.gov/one/api",
            "format": "application/zip",
            "distribution": [{"accessURL": "https://x.gov/one.csv", "format": "text/csv"}],
        }
    ]
    out = map_datasets(items, version=V1_0, now=NOW)
    urls = {a.url: a for a in out.mapped.assets}
    pages = {a.url for a in out.mapped.assets if a.id in out.pages}
    assert set(urls) == {"https://x.gov/one.zip", "https://x.gov/one.csv", "https://x.gov/one/api"}
    assert pages == {"https://x.gov/one/api"}
    assert urls["https://x.gov/one.csv"].format == "CSV"
    dataset = out.mapped.datasets[0]
    assert dataset.organization == "Agency of Examples"
    assert dataset.tags == ("climate", "ocean")


def test_datasets_without_identifier_long_identifiers_and_lone_surrogates():
    items = [
        {"title": "no id"},
        {"identifier": "x" * 300, "title": "Feed the Future\udc92s", "keyword": ["a\udcb0"]},
        {"identifier": "dup", "title": "first"},
        {"identifier": "dup", "title": "second"},
    ]
    out = map_datasets(items, version=V1_1, now=NOW)
    assert out.mapped.skipped["dataset without an identifier"] == 1
    ids = [d.id for d in out.mapped.datasets]
    assert len(ids) == 2 and all(len(i) <= 200 for i in ids)
    long_one = next(d for d in out.mapped.datasets if d.id != "dup")
    assert long_one.title == "Feed the Future\ufffds" and long_one.tags == ("a\ufffd",)
    assert next(d for d in out.mapped.datasets if d.id == "dup").title == "second"
