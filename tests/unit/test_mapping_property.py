"""CKAN packages to datasets and assets (`harvest.mapping`), a property: no input makes the
mapping raise or yield an asset a node could not fetch."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from priorizer.catalog.models import url_key
from priorizer.harvest.mapping import map_dataset, map_packages, packages_in
from tests.support.mapping import accounted

ASSET_SCHEMES = {"http", "https", "ftp"}


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
    assert accounted(mapped) == _expected_accounting(items)
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
