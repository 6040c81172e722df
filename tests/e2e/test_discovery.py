"""`priorizer import-urls` and `priorizer probe` against real local origins (HTTP with Range,
listings, a landing page, HEAD refused or dodged, redirects, dead URLs, a slow path, robots.txt,
and an FTP server), then `/allocate` from a real server: exactly the real files come out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_harvest_cli import cli_env, last_json, rows
from tests.support.discovery_origin import FILES, FtpOrigin, Origin
from tests.support.priorizer_server import PriorizerServer, describe, run_cli

pytestmark = pytest.mark.slow

FTP_FILES = {"pub/f1.dat": 1_000, "pub/f2.dat": 2_000, "pub/sub/f3.dat": 3_000}
PARENTS = [
    "/apache/", "/nginx/", "/py/", "/landing.html", "/nohead/f.bin", "/nolength/g.bin",
    "/redirect/1", "/loop/a", "/dead404", "/dead410", "/slow/s.bin",
]  # fmt: skip
DEAD = ["/loop/a", "/dead404", "/dead410"]


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Origin, FtpOrigin]]:
    root = tmp_path_factory.mktemp("ftp")
    for name, size in FTP_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"f" * size)
    with Origin() as origin, FtpOrigin(root) as ftp:
        yield origin, ftp


def expected_files(origin: Origin, ftp: FtpOrigin) -> dict[str, int]:
    files = {origin.url + path: size for path, size in FILES.items()}
    del files[origin.url + "/apache/private/secret.bin"]  # robots.txt forbids crawling it
    # The catalog's URL is handed out; the node follows the redirects to the file.
    files[origin.url + "/redirect/1"] = files.pop(origin.url + "/redirect/target.bin")
    files.update({f"{ftp.url}/{name}": size for name, size in FTP_FILES.items()})
    return files


def execute(db_url: str, sql: str, **params: object) -> None:
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def ok(args: list[str], env: dict[str, str]) -> dict:
    result = run_cli(args, env, timeout=120)
    assert result.returncode == 0, describe(result)
    return last_json(result)


def allocate_everything(tmp_path: Path, env: dict[str, str]) -> list[dict]:
    with PriorizerServer(tmp_path, env) as server:
        answer = httpx.post(
            f"{server.base_url}/allocate",
            json={"free_space_gb": 1000, "node_id": "big-node"},
            timeout=30,
        )
        gone = httpx.get(f"{server.base_url}/assets", params={"state": "gone"}, timeout=30)
        status = httpx.get(f"{server.base_url}/status", timeout=30).json()
    assert answer.status_code == 200, answer.text
    assert gone.status_code == 200
    return [answer.json(), gone.json(), status]


def test_probe_expands_listings_and_hands_out_exactly_the_real_files(origins, tmp_path, db_url):
    origin, ftp = origins
    env = cli_env(tmp_path, db_url, PROBE_HOST_CONCURRENCY="2", PROBE_RETRIES="0")
    url_list = tmp_path / "parents.txt"
    url_list.write_text("\n".join([*(origin.url + p for p in PARENTS), f"{ftp.url}/pub/"]))
    imported = ok(["import-urls", str(url_list)], env)
    assert imported["added"] == len(PARENTS) + 1

    first = ok(["probe", "--concurrency", "16"], env)
    assert (first["gone"] == 3 and first["errors"] == 0) or first["gone"] == 2

    items, gone, status = allocate_everything(tmp_path, env)
    handed = {item["url"]: item for item in items}
    expected = expected_files(origin, ftp)
    assert set(handed) == set(expected)
    for url, size in expected.items():
        assert handed[url]["size_bytes"] is None  # no copy yet: the probe's size is the size
        assert round(handed[url]["size_mb"] * 1024 * 1024) == size, url
    gone_urls = {item["url"] for item in gone["items"]}
    assert gone_urls == {origin.url + p for p in DEAD}
    assert status["discovery"]["gone"] >= 2 and status["discovery"]["expanded"] == 5

    # Politeness: never more than two requests at once to the origin; our User-Agent.
    assert max(origin.most.values()) <= 2
    assert all(agent.startswith("Priorizer/") for _m, _p, agent in origin.requests)
    assert not any(path.startswith("/apache/private/") for _m, path, _a in origin.requests)

    # Children carry their parent's dataset and the probe record; the loop leads nowhere.
    (probe,) = rows(db_url, "SELECT * FROM asset_probes WHERE final_url LIKE '%target.bin'")
    assert probe.status == 200 and probe.size_bytes == 7_777 and probe.etag
    (loop,) = rows(
        db_url,
        "SELECT p.kind, p.error, a.state FROM asset_probes p JOIN assets a "
        "ON a.id = p.asset_id WHERE a.url LIKE '%/loop/a'",
    )
    assert loop.kind == "gone" and "loop" in loop.error and loop.state == "gone"

    # Idempotent: probing every asset again adds nothing and changes no state.
    states = {r.url: r.state for r in rows(db_url, "SELECT url, state FROM assets")}
    again = ok(["probe", "--limit", "1000"], {**env, "PROBE_REFRESH_DAYS": "0.000001"})
    assert again["probed"] == len(states) and again["children_added"] == 0, again
    assert {r.url: r.state for r in rows(db_url, "SELECT url, state FROM assets")} == states

    # A file removed from a listing is marked gone at the next probe of its parent (alone).
    parent = origin.url + "/nginx/"
    execute(db_url, "UPDATE assets SET probed_at = NULL WHERE url = :url", url=parent)
    origin.listings["/nginx/"] = ("nginx", ["../elsewhere/"])
    try:
        once = ok(["probe", "--limit", "1"], env)
    finally:
        origin.listings["/nginx/"] = ("nginx", ["x.bin", "../elsewhere/"])
    assert once["probed"] == 1 and once["vanished"] == 1, once
    (x,) = rows(db_url, "SELECT state FROM assets WHERE url = :url", url=parent + "x.bin")
    assert x.state == "gone"
    assert len(rows(db_url, "SELECT id FROM assets")) == len(states)  # never deleted


def test_import_urls_of_a_truncated_json_array_keeps_every_complete_record(tmp_path, db_url):
    env = cli_env(tmp_path, db_url)
    records = [
        {"url": f"https://data.example.org/f{i}.nc", "size_bytes": 1000 + i, "priority": 7}
        for i in range(3)
    ]
    text = json.dumps(records)
    cut = text[: text.rindex("{") + 25]  # the last record cut mid-write
    path = tmp_path / "crawl.json"
    path.write_text(cut)

    result = run_cli(["import-urls", str(path)], env)
    assert result.returncode == 0, describe(result)
    report = last_json(result)
    assert report["added"] == 2 and report["unread_bytes"] == 25
    assert "25 bytes" in result.stderr
    sizes = {r.url: r.size_mb for r in rows(db_url, "SELECT url, size_mb FROM assets")}
    assert set(sizes) == {records[0]["url"], records[1]["url"]}

    nothing = tmp_path / "nothing.json"
    nothing.write_text('[{"url": "https://data.exa')
    result = run_cli(["import-urls", str(nothing)], env)
    assert result.returncode == 1 and "no complete record" in result.stderr
    assert len(rows(db_url, "SELECT id FROM assets")) == 2
