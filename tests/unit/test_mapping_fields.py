"""CKAN packages to datasets and assets (`harvest.mapping`): each field's function (size_mb,
asset_url, file_format, organization_name, tag_names, views, parse_time) on a table of what
portals really send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from priorizer.harvest.mapping import (
    MAX_FORMAT,
    asset_url,
    file_format,
    map_packages,
    organization_name,
    parse_time,
    size_mb,
    tag_names,
    views,
)
from tests.support.mapping import MB

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
