"""Property-based tests of the checksum-file parser: a vendor's (or an attacker's) file never
escapes as a traceback or a hang, only as a ChecksumFileError, and what parses is sound.

Inputs are random text, well-formed GNU/BSD/clear-signed files, and lines built to make
regular expressions backtrack (long runs of spaces, colons, parentheses, digits).  Each case
runs in a forked child under a generous time and memory cap (tests/fixtures/capped.py);
nothing here measures speed.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagefactory.fetch.checksums import (
    ChecksumEntry,
    detect_format,
    find_checksum,
    parse_checksums,
    unwrap_clearsigned,
)
from imagefactory.fetch.errors import ChecksumFileError
from tests.fixtures.capped import run_capped

PROPERTY = settings(
    max_examples=80,
    deadline=None,  # the cap in the child catches hangs; no timing assertions here
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IMAGE = "image.qcow2"


def parse_every_way(text: str) -> None:
    """Every entry point on `text`; only ChecksumFileError may come out, and whatever parses
    holds together (lowercase hex of the algorithm's length, names that came from the text)."""
    with contextlib.suppress(ChecksumFileError):
        detect_format(text)
    with contextlib.suppress(ChecksumFileError):
        unwrap_clearsigned(text)
    for fmt in ("auto", "gnu", "bsd", "clearsigned"):
        for algorithm in (None, "sha256", "sha512"):
            try:
                entries = parse_checksums(text, fmt, algorithm=algorithm)
            except ChecksumFileError:
                continue
            for entry in entries:
                _sound(entry)
            with contextlib.suppress(ChecksumFileError):
                _sound(find_checksum(entries, IMAGE, algorithm=algorithm))


def _sound(entry: ChecksumEntry) -> None:
    assert entry.hexdigest == entry.hexdigest.lower()
    assert all(c in "0123456789abcdef" for c in entry.hexdigest)
    expected = {"sha256": 64, "sha512": 128}.get(entry.algorithm)
    assert expected is None or len(entry.hexdigest) == expected
    assert entry.size is None or 0 <= entry.size < 10**20
    assert entry.name and entry.line >= 1


class Input:
    """A generated file, shown by size and ends (a 1 MiB example would bury the report)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"<{len(self.text)} chars: {self.text[:60]!r} ... {self.text[-20:]!r}>"


def check(case: Input) -> None:
    run_capped(parse_every_way, case.text)


hexes = st.text("0123456789abcdefABCDEF", min_size=0, max_size=140)
names = st.one_of(
    st.just(IMAGE),
    st.just("./" + IMAGE),
    st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s and "\r" not in s),
    st.text("()= *\\:#a", min_size=1, max_size=30),
)
gnu_line = st.builds(
    lambda esc, hexd, mode, name: f"{esc}{hexd} {mode}{name}",
    st.sampled_from(["", "\\"]),
    hexes,
    st.sampled_from([" ", "*", ""]),
    names,
)
bsd_line = st.builds(
    lambda esc, alg, name, hexd: f"{esc}{alg} ({name}) = {hexd}",
    st.sampled_from(["", "\\"]),
    st.sampled_from(["SHA256", "SHA512", "SHA2-256", "sha-512", "MD5", "B2", "X-1"]),
    names,
    hexes,
)
size_comment = st.builds(
    lambda name, spaces, digits: f"#{spaces}{name}:{spaces}{digits}{spaces}bytes",
    names,
    st.text(" \t", max_size=4),
    st.text("0123456789", min_size=0, max_size=30),
)
lines = st.lists(
    st.one_of(gnu_line, bsd_line, size_comment, st.text(max_size=40), st.just("")),
    max_size=12,
).map("\n".join)
clearsigned = st.builds(
    lambda headers, body, signature: (
        "-----BEGIN PGP SIGNED MESSAGE-----\n"
        + headers
        + "\n"
        + "\n".join(("- " + line) if line.startswith("-") else line for line in body.split("\n"))
        + signature
    ),
    st.sampled_from(["Hash: SHA256\n", "", "Hash: SHA256\nComment: x\n"]),
    lines,
    st.sampled_from(["\n-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n", ""]),
)
# Lines built to make a regex backtrack: many repetitions of what its `.+`, `\s*` and
# `\d+` parts could each take.
backtracking = st.builds(
    lambda prefix, piece, count, suffix: prefix + piece * count + suffix,
    st.sampled_from(["#", "# ", "SHA256 (", "\\SHA256 (", "a" * 64 + " ", ""]),
    st.sampled_from([" ", ":", ": 1 ", ") = a", "(", "\\", "9", "\t", ":9 bytes"]),
    st.integers(1_000, 200_000),
    st.sampled_from(["", "x", " bytes", ") = " + "a" * 64, "\n" + "a" * 64 + "  " + IMAGE]),
)


@PROPERTY
@given(st.one_of(st.text(max_size=2000), lines, clearsigned, backtracking).map(Input))
@example(Input("#" + " " * 300_000 + "x\n" + "a" * 64 + "  " + IMAGE))
@example(Input("# " + IMAGE + ": " + "9" * 5000 + " bytes\n" + "a" * 64 + "  " + IMAGE))
@example(Input("SHA256 (" + ") = a" * 100_000 + "\n"))
@example(Input("-----BEGIN PGP SIGNED MESSAGE-----\n" * 1000))
def test_checksum_files_never_raise_anything_but_checksum_file_errors(case: Input) -> None:
    check(case)


def test_a_long_size_comment_is_read_and_a_huge_one_ignored() -> None:
    """What the properties found: the size comment's regex backtracked quadratically on a
    line of spaces, and a 5000-digit size raised ValueError from int()."""
    digest = "a" * 64
    entries = parse_checksums(f"# {IMAGE}: 1234 bytes\n{digest}  {IMAGE}\n", "gnu")
    assert entries[0].size == 1234
    huge = f"# {IMAGE}: {'9' * 5000} bytes\n{digest}  {IMAGE}\n"
    assert parse_checksums(huge, "gnu")[0].size is None
    spaces = "#" + " " * 1_000_000 + "x\n" + f"{digest}  {IMAGE}\n"
    assert parse_checksums(spaces, "gnu")[0].hexdigest == digest
