"""URL lists from other tools (discovery.imports): JSON arrays, JSON lines, CSV, plain lines;
cut short, or wrong."""

from __future__ import annotations

import json

import pytest

from priorizer.discovery.imports import UrlListError, parse_url_list

RECORDS = [
    {"url": "https://a.example.org/1.nc", "size_bytes": 10, "priority": 9, "dataset_id": "d1"},
    {
        "url": "ftp://b.example.org/pub/2.csv",
        "content_type": "text/csv",
        "source_page": "https://b/",
    },
    {"url": "http://c.example.org/3.zip"},
]


def test_a_json_array():
    parsed = parse_url_list(json.dumps(RECORDS).encode())
    assert [r.url for r in parsed.records] == [r["url"] for r in RECORDS]
    first = parsed.records[0]
    assert (first.size_bytes, first.priority, first.dataset_id) == (10, 9, "d1")
    assert parsed.records[1].content_type == "text/csv" and parsed.unread_bytes == 0


@pytest.mark.parametrize("cut", [1, 7, 30])
def test_a_truncated_json_array_keeps_the_complete_records(cut):
    text = json.dumps(RECORDS, indent=1)
    start = text.rindex("{")
    parsed = parse_url_list(text[: start + cut].encode())
    assert [r.url for r in parsed.records] == [RECORDS[0]["url"], RECORDS[1]["url"]]
    assert parsed.unread_bytes == len(text[start : start + cut].encode())


def test_json_lines_cut_in_the_last_line():
    text = "\n".join(json.dumps(r) for r in RECORDS)
    parsed = parse_url_list(text[:-5].encode())
    assert len(parsed.records) == 2 and parsed.unread_bytes == len(json.dumps(RECORDS[2])) - 5


def test_a_bad_line_in_the_middle_of_json_lines_is_refused():
    lines = [json.dumps(RECORDS[0]), "{nope", json.dumps(RECORDS[2])]
    with pytest.raises(UrlListError, match="line 2"):
        parse_url_list("\n".join(lines).encode())


def test_csv_with_a_url_column_and_plain_lines():
    csv_text = "url,size_bytes,priority\nhttps://a/1.nc,100,3\nhttps://a/2.nc,,\n"
    parsed = parse_url_list(csv_text.encode())
    assert [(r.url, r.size_bytes, r.priority) for r in parsed.records] == [
        ("https://a/1.nc", 100, 3),
        ("https://a/2.nc", None, None),
    ]
    plain = parse_url_list(b"# from wget --spider\nhttps://a/1.nc\n\nhttps://a/2.nc\n")
    assert [r.url for r in plain.records] == ["https://a/1.nc", "https://a/2.nc"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"url": "https://a/1', "no complete record"),
        (b"", "no complete record"),
        (b'[{"url": "file:///etc/passwd"}]', "not an http, https or ftp URL"),
        (b'[{"url": "https://a/1", "priority": 11}]', "priority 11 is not between 1 and 10"),
        (b'[{"url": "https://a/1", "size_bytes": "big"}]', "size_bytes 'big' is not a whole"),
        (b"[42]", "not an object with a url"),
    ],
)
def test_bad_lists_are_refused_whole(data, message):
    with pytest.raises(UrlListError, match=message):
        parse_url_list(data)
