"""The listing parsers on real pages and FTP answers (tests/fixtures/listings/SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from priorizer.discovery.listings import (
    LANDING,
    LISTING,
    name_of,
    parse_ftp_list,
    parse_page,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "listings"


def page(prefix: str) -> str:
    (path,) = FIXTURES.glob(f"{prefix}*")
    return path.read_text("utf-8-sig", errors="replace")


# (file, the URL it was saved from, files, folders) as SOURCES.md counts them.
CASES = [
    ("apache-fancy-table__rclone", "http://h/nick/pub/", 13, 5),  # 11 + 2 hand-added rows
    (
        "apache-fancy-table__opendirectorydownloader__DirectoryListing27b",
        "http://ftp.isc.org/isc/",
        4,
        25,
    ),
    (
        "apache-fancy-table__opendirectorydownloader__DirectoryListing59a",
        "https://ftp.yzu.edu.tw/Linux/",
        0,
        66,
    ),
    ("apache-fancy-table__tsumugu", "https://dl.winehq.org/wine-builds/", 2, 6),
    ("apache-pre-legacy", "http://repo.mysql.com/232905/apt/ubuntu/pool/mysql-tools/m/", 0, 10),
    (
        "apache-pre__opendirectorydownloader__DirectoryListing120b",
        "http://www.mrt.tas.gov.au/a/ASCII/",
        5,
        0,
    ),
    (
        "apache-pre__opendirectorydownloader__DirectoryListing71a",
        "https://ftp.sunet.se/mirror/ubuntu-releases/",
        0,
        17,
    ),
    (
        "apache-pre__opendirectorydownloader__DirectoryListing99a",
        "http://ftp.heanet.ie/m/source/source/",
        0,
        6,
    ),
    ("nginx__rclone", "http://h/atomic/fedora/", 2, 4),
    ("nginx__tsumugu__fixtures_monitoring", "http://h/monitoring-plugins/", 19, 4),
    ("nginx__tsumugu__fixtures_proxmox", "http://download.proxmox.com/debian/x/", 206, 0),
    ("nginx__opendirectorydownloader", "http://repo.palkeo.com/esprit/soci%C3%A9t%C3%A9/", 16, 4),
    (
        "iis__opendirectorydownloader__DirectoryListing20b",
        "http://slot-tech.com/interesting_stuff/magazine/",
        3,
        1,
    ),
    (
        "iis__opendirectorydownloader__DirectoryListing10b",
        "http://w.net/music/Music/Bon%20Jovi/Cross%20Road/",
        1,
        0,
    ),
    (
        "iis__opendirectorydownloader__DirectoryListing11b",
        "http://webdav.gnunix.co.kr/Lecture/",
        0,
        19,
    ),
    (
        "iis__opendirectorydownloader__DirectoryListing106b",
        "http://dl.liansec.net/srv1/Black%20Hat/2018%20USA/",
        4,
        0,
    ),
    ("lighttpd", "http://ftpmirror.your.org/pub/openstreetmap/planet/2019/", 6, 0),
]


@pytest.mark.parametrize(
    ("prefix", "url", "files", "folders"), CASES, ids=[c[0][:40] for c in CASES]
)
def test_real_listings_give_their_entries_and_nothing_else(prefix, url, files, folders):
    links = parse_page(page(prefix), url)

    assert links.kind == LISTING
    assert (len(links.files), len(links.folders)) == (files, folders)
    for link in links.files + links.folders:
        assert link.startswith(url) and link != url  # below the folder: no parent, no header
        assert "?" not in link and "#" not in link  # no sort links, no anchors
    assert all(link.endswith("/") for link in links.folders)


def test_names_come_from_the_href_not_the_cut_text():
    links = parse_page(page("nginx__tsumugu__fixtures_proxmox"), "http://d/x/")
    names = {name_of(link) for link in links.files}
    assert "ceph-base_17.2.6-pve1+3_amd64.deb" in names
    assert not any(name.endswith("..>") for name in names)


def test_iis_sizes_and_absolute_hrefs():
    links = parse_page(
        page("iis__opendirectorydownloader__DirectoryListing106b"),
        "http://dl.liansec.net/srv1/Black%20Hat/2018%20USA/",
    )
    assert name_of(links.files[0]) == "2018 USA.part1.rar"


LANDING_PAGE = """<html><head><title>Sea ice data</title><base href="/data/"></head><body>
<nav><a href="/">Home</a> <a href="#main">skip</a> <a href="mailto:help@example.org">mail</a>
<a href="javascript:void(0)">menu</a></nav>
<p>Download <a href="ice/2020.nc">2020</a>, <a href="ice/2021.nc#x">2021</a>,
<a href="https://elsewhere.example.com/ice/2022.nc">a mirror</a>,
<a href="http://portal.example.org:8080/other">another port</a>,
<a href="ice/2020.nc">2020 again</a> and <a href="/docs/about.html">about</a>.</p>
</body></html>"""


def test_a_landing_page_gives_its_same_site_links_once():
    links = parse_page(LANDING_PAGE, "http://portal.example.org/datasets/ice")

    assert links.kind == LANDING
    assert links.files == [
        "http://portal.example.org/",
        "http://portal.example.org/data/ice/2020.nc",
        "http://portal.example.org/data/ice/2021.nc",
        "http://portal.example.org/docs/about.html",
    ]  # whether each is a file is for probing to say
    assert links.folders == []


def test_python_http_server_listing():
    html = (
        "<!DOCTYPE HTML><html><head><title>Directory listing for /d/</title></head><body>"
        '<h1>Directory listing for /d/</h1><hr><ul><li><a href="a.csv">a.csv</a></li>'
        '<li><a href="sub/">sub/</a></li></ul><hr></body></html>'
    )
    links = parse_page(html, "http://127.0.0.1:8000/d/")
    assert links.kind == LISTING
    assert links.files == ["http://127.0.0.1:8000/d/a.csv"]
    assert links.folders == ["http://127.0.0.1:8000/d/sub/"]


def ftp(prefix: str) -> str:
    (path,) = FIXTURES.glob(f"ftp-list-{prefix}*")
    return path.read_text("latin-1")


def test_ftp_unix_wu_listing_skips_banners_and_keeps_links_by_name():
    entries = {
        e.name: e
        for e in parse_ftp_list(ftp("unix__mozilla-gecko__netwerk_test_gtest_parse-ftp_U-wu"))
    }
    assert entries["IAFA-LISTINGS"].size_bytes == 80507411
    assert "ls-lR" in entries and not entries["ls-lR"].is_folder
    assert not any(name.startswith(("230", "ftp>", "total")) for name in entries)


def test_ftp_msdos_listing_with_spaces_junctions_and_odd_dates():
    entries = {e.name: e for e in parse_ftp_list(ftp("msdos"))}
    assert entries["20Year"].is_folder
    assert entries["Jon Kauffman Enjoys the Good Life.jpg"].size_bytes == 95077
    assert entries["b_junction_sample"].is_folder and entries["c_junction_sample"].is_folder
    assert entries["Bug961346"].size_bytes == 18864566
    assert entries["Bug1061898"].is_folder
    assert entries["Bug1125816"].size_bytes == 30724571


@pytest.mark.parametrize(
    ("prefix", "count"),
    [
        ("unix__mozilla-gecko__netwerk_test_gtest_parse-ftp_U-proftpd", 3),
        ("unix__mozilla-gecko__netwerk_test_gtest_parse-ftp_U-WinNT", None),
    ],
)
def test_ftp_unix_listings_from_other_servers(prefix, count):
    entries = parse_ftp_list(ftp(prefix))
    assert entries and all(e.name and " " not in e.name[:1] for e in entries)
    if count is not None:
        assert len(entries) == count
