"""Finding the package mirror in apt's configuration, and reading a suite's Release date.

Mirror names here are placeholders on reserved domains (RFC 2606); the Release files are
served by a real HTTP server on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from imagefactory.errors import UsageError
from imagefactory.fetch.apt_sources import (
    choose_mirror,
    discover_mirror,
    fetch_release_date,
    parse_deb822_sources,
    parse_one_line_sources,
    parse_release_date,
    read_host_sources,
    resolve_mirror,
)
from imagefactory.fetch.errors import FetchError

MAIN = "http://mirror.example.org/debian"
SECURITY = "http://security.example.org/debian-security"

DEB822 = f"""\
Types: deb
# a comment inside the stanza
URIs: {SECURITY}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: {MAIN}/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
"""

RELEASE = """\
Origin: Debian
Label: Debian
Suite: stable
Codename: trixie
Date: Sat, 12 Sep 2026 07:55:41 UTC
Architectures: all amd64
Components: main contrib
"""


def write_etc_apt(
    root: Path, *, sources_list: str = "", parts: dict[str, str] | None = None
) -> Path:
    etc = root / "etc-apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    return etc


def test_deb822_stanzas_are_parsed_with_comments_and_continuation_lines() -> None:
    sources = parse_deb822_sources(DEB822, "debian.sources")
    assert [s.suites for s in sources] == [("bookworm-security",), ("bookworm", "bookworm-updates")]
    assert sources[1].types == ("deb", "deb-src")
    assert sources[1].components == ("main", "contrib")
    assert all(s.enabled for s in sources)


def test_deb822_enabled_no_disables_a_stanza() -> None:
    text = f"Types: deb\nURIs: {MAIN}\nSuites: trixie\nEnabled: no\n"
    (source,) = parse_deb822_sources(text, "x.sources")
    assert not source.enabled
    assert choose_mirror([source]) is None


def test_one_line_format_with_options_and_comments() -> None:
    text = (
        "# deb http://old.example.org/debian buster main\n"
        f"deb [arch=amd64 signed-by=/k.gpg] {MAIN} trixie main contrib  # trailing\n"
        f"deb-src {MAIN} trixie main\n"
    )
    sources = parse_one_line_sources(text, "sources.list")
    assert [(s.types, s.uris, s.suites, s.components) for s in sources] == [
        (("deb",), (MAIN,), ("trixie",), ("main", "contrib")),
        (("deb-src",), (MAIN,), ("trixie",), ("main",)),
    ]


def test_the_archive_mirror_is_chosen_not_the_security_one(tmp_path: Path) -> None:
    etc = write_etc_apt(tmp_path, parts={"debian.sources": DEB822})
    assert discover_mirror(etc) == MAIN  # trailing slash dropped


def test_backports_only_host_still_yields_the_archive(tmp_path: Path) -> None:
    etc = write_etc_apt(
        tmp_path,
        sources_list=f"deb {SECURITY} bookworm-security main\n",
        parts={"backports.list": f"deb {MAIN} bookworm-backports main\n"},
    )
    assert discover_mirror(etc) == MAIN


def test_files_with_other_suffixes_are_ignored(tmp_path: Path) -> None:
    etc = write_etc_apt(
        tmp_path,
        parts={
            "old.sources.disabled": f"Types: deb\nURIs: {MAIN}\nSuites: trixie\n",
            "other.list.save": f"deb {MAIN} trixie main\n",
        },
    )
    assert read_host_sources(etc) == []
    with pytest.raises(UsageError, match="no package mirror") as info:
        discover_mirror(etc)
    assert "--mirror" in (info.value.hint or "")


def test_non_http_entries_are_not_mirrors() -> None:
    sources = parse_one_line_sources(
        "deb cdrom:[Debian 13]/ trixie main\ndeb file:///srv/mirror trixie main\n", "x"
    )
    assert choose_mirror(sources) is None


def test_explicit_mirror_wins_over_spec_and_host(tmp_path: Path) -> None:
    etc = write_etc_apt(tmp_path, parts={"debian.sources": DEB822})
    assert resolve_mirror("http://cli.example.net/debian/", MAIN, etc_apt=etc) == (
        "http://cli.example.net/debian"
    )
    assert resolve_mirror(None, "http://spec.example.net/d", etc_apt=etc) == (
        "http://spec.example.net/d"
    )
    assert resolve_mirror(None, None, etc_apt=etc) == MAIN


def test_a_mirror_that_is_not_http_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not an http"):
        resolve_mirror("ftp.example.org/debian", etc_apt=tmp_path)


def test_release_date_is_normalised_to_utc_iso() -> None:
    assert parse_release_date(RELEASE) == "2026-09-12T07:55:41+00:00"
    shifted = RELEASE.replace("07:55:41 UTC", "09:55:41 +0200")
    assert parse_release_date(shifted) == "2026-09-12T07:55:41+00:00"


def test_release_without_date_is_an_error() -> None:
    with pytest.raises(FetchError, match="no Date"):
        parse_release_date("Origin: Debian\nSuite: stable\n")


def test_inrelease_is_read_when_present(httpserver: HTTPServer) -> None:
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + RELEASE
        + "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
    )
    httpserver.expect_request("/debian/dists/trixie/InRelease").respond_with_data(signed)
    date = fetch_release_date(httpserver.url_for("/debian"), "trixie")
    assert date == "2026-09-12T07:55:41+00:00"


def test_release_is_the_fallback_when_inrelease_is_missing(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/debian/dists/trixie/InRelease").respond_with_data("", status=404)
    httpserver.expect_request("/debian/dists/trixie/Release").respond_with_data(RELEASE)
    assert fetch_release_date(httpserver.url_for("/debian/"), "trixie").startswith("2026-09-12")


def test_unknown_suite_names_the_suite(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/debian/dists/trixy/InRelease").respond_with_data("", status=404)
    httpserver.expect_request("/debian/dists/trixy/Release").respond_with_data("", status=404)
    with pytest.raises(FetchError, match="trixy") as info:
        fetch_release_date(httpserver.url_for("/debian"), "trixy")
    assert "suite" in (info.value.hint or "")


def test_unreachable_mirror_is_a_fetch_error() -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(FetchError, match="Release file"):
        fetch_release_date("http://127.0.0.1:9/debian", "trixie", timeout=2)
