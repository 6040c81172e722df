"""`agent.download.fetch` against a real local origin, in-process: the rules of one download
that the end-to-end tests do not reach one by one."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from priorizer.agent import download
from priorizer.agent.download import Budget, DownloadFailed, Interrupted, Limits, Target
from tests.support.origin import Origin, Route, random_bytes

FAST = Limits(attempts=3, wait_initial=0.01, wait_max=0.05)
DATA = random_bytes(300_000, 7)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as running:
        running.add("/data.bin", Route("file", DATA))
        running.add("/no-range.bin", Route("no-length", DATA))
        running.add("/server-error", Route("status", status=503))
        running.add("/forbidden", Route("status", status=403))
        running.add("/page", Route("html", b"<html><body>hello</body></html>"))
        yield running


@pytest.fixture
def client() -> Iterator[download.httpx.Client]:
    with download.new_client(user_agent="test", connect_timeout=5, read_timeout=5) as http:
        yield http


def target(tmp_path: Path, url: str, **fields: object) -> Target:
    path = tmp_path / "file.bin"
    return Target(url=url, path=path, partial=tmp_path / "file.bin.partial", **fields)  # type: ignore[arg-type]


def fetch(client, wanted: Target, budget: Budget | None = None, stop=None):  # type: ignore[no-untyped-def]
    return download.fetch(
        client,
        wanted,
        budget=budget or Budget(1 << 30),
        stop=stop or threading.Event(),
        limits=FAST,
    )


def test_a_partial_file_resumes_with_range_and_the_hash_covers_every_byte(client, origin, tmp_path):
    wanted = target(tmp_path, origin.url("/data.bin"), exact_bytes=len(DATA))
    wanted.partial.write_bytes(DATA[:100_000])
    got = fetch(client, wanted)
    assert got.resumed_from == 100_000
    assert got.sha256 == hashlib.sha256(DATA).hexdigest()
    assert wanted.path.read_bytes() == DATA and not wanted.partial.exists()
    assert origin.log("/data.bin")[-1].range == "bytes=100000-"


def test_an_origin_that_ignores_range_starts_the_file_over(client, origin, tmp_path):
    wanted = target(tmp_path, origin.url("/no-range.bin"))
    wanted.partial.write_bytes(b"stale bytes from another version")
    got = fetch(client, wanted)
    assert origin.log("/no-range.bin")[-1].range == "bytes=32-"  # asked to resume...
    assert got.resumed_from == 0  # ...was sent the whole file, and took it whole
    assert wanted.path.read_bytes() == DATA
    assert got.sha256 == hashlib.sha256(DATA).hexdigest()


def test_a_partial_longer_than_the_file_is_refused_range_and_started_over(client, origin, tmp_path):
    wanted = target(tmp_path, origin.url("/data.bin"))
    wanted.partial.write_bytes(b"x" * (len(DATA) + 10))  # the origin answers 416
    got = fetch(client, wanted)
    assert wanted.path.read_bytes() == DATA and got.size_bytes == len(DATA)


@pytest.mark.parametrize(
    ("path", "code"), [("/server-error", "http_error"), ("/forbidden", "http_error")]
)
def test_http_errors_are_reported_after_retries_only_when_worth_retrying(
    client, origin, tmp_path, path, code
):
    before = len(origin.log(path))
    with pytest.raises(DownloadFailed) as failed:
        fetch(client, target(tmp_path, origin.url(path)))
    assert failed.value.code == code
    tries = len(origin.log(path)) - before
    assert tries == (FAST.attempts if path == "/server-error" else 1)


def test_an_unreachable_origin_is_a_connection_failure(client, tmp_path):
    with pytest.raises(DownloadFailed) as failed:
        fetch(client, target(tmp_path, "http://127.0.0.1:9/nothing-listens-here"))
    assert failed.value.code == "connection"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/pub/file.nc", "http://[::1/broken"])
def test_a_url_this_node_cannot_fetch_is_its_own_failure_not_the_asset_s(client, tmp_path, url):
    with pytest.raises(DownloadFailed) as failed:
        fetch(client, target(tmp_path, url))
    assert failed.value.code == "node_error"


def test_a_web_page_is_accepted_when_the_catalog_says_html(client, origin, tmp_path):
    got = fetch(client, target(tmp_path, origin.url("/page"), accepts_html=True))
    assert got.size_bytes == len(b"<html><body>hello</body></html>")


def test_the_budget_bounds_every_byte_written_and_is_given_back_on_failure(
    client, origin, tmp_path
):
    budget = Budget(200_000)
    with pytest.raises(DownloadFailed) as failed:
        fetch(client, target(tmp_path, origin.url("/no-range.bin")), budget=budget)
    assert failed.value.code == "disk_full"
    download.discard_partial(target(tmp_path, origin.url("/no-range.bin")), budget)
    assert budget.available == 200_000
    assert not (tmp_path / "file.bin").exists()


def test_a_known_checksum_that_differs_is_a_mismatch_and_nothing_is_kept(client, origin, tmp_path):
    wanted = target(tmp_path, origin.url("/data.bin"), expected_sha256="0" * 64)
    with pytest.raises(DownloadFailed) as failed:
        fetch(client, wanted)
    assert failed.value.code == "checksum_mismatch"
    assert hashlib.sha256(DATA).hexdigest() in str(failed.value)
    assert not wanted.path.exists() and not wanted.partial.exists()


def test_a_stop_interrupts_and_keeps_the_partial_file(client, origin, tmp_path):
    origin.add("/slow.bin", Route("file", DATA, rate=200_000))
    stop = threading.Event()
    wanted = target(tmp_path, origin.url("/slow.bin"))
    seen: list[int] = []

    def progress(n: int) -> None:
        seen.append(n)
        if sum(seen) > 50_000:
            stop.set()

    with pytest.raises(Interrupted):
        download.fetch(
            client, wanted, budget=Budget(1 << 30), stop=stop, progress=progress, limits=FAST
        )
    assert 50_000 < wanted.partial.stat().st_size < len(DATA)
    assert DATA.startswith(wanted.partial.read_bytes())
