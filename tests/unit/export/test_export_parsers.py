"""The exporter's parsers of outside text: qemu-img's progress records and an existing
SHA256SUMS file.  Random and hostile input never raises, hangs or bombs (each case in a
capped child); what they return is checked against what the input holds."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.commands.export import FORMAT_CHOICES
from imagefactory.export.convert import percentages
from imagefactory.export.formats import FORMATS
from imagefactory.export.sidecar import parse_sums, render_sums
from tests.fixtures.capped import run_capped


def test_the_cli_offers_exactly_the_exporters_formats() -> None:
    assert set(FORMAT_CHOICES) == set(FORMATS)


def test_progress_records_as_qemu_img_writes_them() -> None:
    chunk = b"    (0.00/100%)\r    (1.01/100%)\r    (100.00/100%)\r\n"
    assert percentages(chunk) == [0.0, 1.01, 100.0]
    assert percentages(b"(250.00/100%)(-1/100%)(nan/100%)") == []


def _percentages_in_range(raw: bytes) -> None:
    assert all(0.0 <= p <= 100.0 for p in percentages(raw))


@settings(max_examples=120, deadline=None)
@given(raw=st.binary(max_size=4000) | st.text(alphabet="(0123456789./%) \r", max_size=400).map(
    str.encode))  # fmt: skip
def test_progress_parser_takes_any_bytes(raw: bytes) -> None:
    run_capped(_percentages_in_range, raw)


def test_sums_round_trip_and_other_lines_are_dropped() -> None:
    sums = {"a.raw": "0" * 64, "b c.vhd": hashlib.sha256(b"x").hexdigest()}
    text = render_sums(sums) + "garbage\n" + "f" * 64 + " *binary.ova\n"
    assert parse_sums(text) == {**sums, "binary.ova": "f" * 64}


def _sums_parse(text: str) -> None:
    found = parse_sums(text)
    for name, digest in found.items():
        assert len(digest) == 64 and name
    assert parse_sums(render_sums(found)) == found


@settings(max_examples=120, deadline=None)
@given(text=st.text(max_size=3000))
def test_sums_parser_takes_any_text(text: str) -> None:
    run_capped(_sums_parse, text)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200_000, alphabet="0123456789abcdef  *\n").map(lambda t: t * 5))
def test_sums_parser_on_huge_lookalike_input(text: str) -> None:
    run_capped(_sums_parse, text)
