"""Terminal sequences of every ECMA-48 kind, around and inside result lines."""

from __future__ import annotations

import pytest

from imagefactory.testrun.escapes import decode_console, strip_escapes
from imagefactory.testrun.results import parse_bytes, parse_log

LINE = (
    "[2026-11-22T07:07:17.183842] Test: /usr/share/zfs/zfs-tests/tests/functional/rsend/"
    "send_encrypted_hierarchy (run as root) [00:21] [FAIL]"
)
SUMMARY = "\nResults Summary\nFAIL\t   1\n"

WRAPPINGS = {
    "colon-form SGR (truecolour)": "\x1b[38:2::200:0:0m",
    "SGR reset": "\x1b[m",
    "private-mode CSI": "\x1b[?25l",
    "CSI with an intermediate byte": "\x1b[2 q",
    "8-bit CSI": "\x9b31m",
    "OSC ended by BEL (window title)": "\x1b]0;zfs-tests\x07",
    "OSC ended by ST (hyperlink)": "\x1b]8;;https://example.invalid/\x1b\\",
    "8-bit OSC ended by 8-bit ST": "\x9d2;title\x9c",
    "DCS": "\x1bP1$r0m\x1b\\",
    "APC": "\x1b_Gf=100;AAAA\x1b\\",
    "PM and SOS": "\x1b^private\x1b\\\x1bXstring\x1b\\",
    "save and restore cursor": "\x1b7\x1b8",
    "keypad modes": "\x1b=\x1b>",
    "reverse index": "\x1bM",
    "charset designation G0 ASCII": "\x1b(B",
    "charset designation G1 line drawing, shift in/out": "\x1b)0\x0e\x0f",
    "UTF-8 charset": "\x1b%G",
    "lone BEL and NUL": "\x07\x00",
}


@pytest.mark.parametrize("sequence", WRAPPINGS.values(), ids=WRAPPINGS.keys())
def test_a_result_line_wrapped_in_any_sequence_is_still_read(sequence: str) -> None:
    wrapped = (
        LINE.replace("[FAIL]", f"{sequence}[{sequence}FA{sequence}IL{sequence}]{sequence}")
        .replace("Test:", f"Te{sequence}st:")
        .replace("(run as", f"({sequence}run as")
        .replace("[00:21]", f"[00{sequence}:21]")
    )

    run = parse_log(sequence + wrapped + sequence + SUMMARY)

    assert [(t.name, t.result, t.duration_s) for t in run.tests] == [
        ("rsend/send_encrypted_hierarchy", "FAIL", 21.0)
    ]
    assert run.summary_mismatch is None
    assert run.unexpected_failures() == ["rsend/send_encrypted_hierarchy"]


def test_a_raw_8bit_csi_byte_is_removed_with_its_parameters() -> None:
    """0x9B is a UTF-8 continuation byte: only after decoding can it be told apart."""
    data = LINE.replace("[FAIL]", "[\x00FAIL\x00]").encode().replace(b"\x00", b"\x9b1;31m")

    run = parse_bytes(data + SUMMARY.encode())

    assert [(t.name, t.result) for t in run.tests] == [("rsend/send_encrypted_hierarchy", "FAIL")]


def test_valid_utf8_around_escapes_is_kept_and_invalid_bytes_become_replacement() -> None:
    data = "zpool créé ✓ ".encode() + b"\x9b1m\xff\x1b[0m" + "日本".encode()

    assert strip_escapes(decode_console(data)) == "zpool créé ✓ \ufffd日本"


def test_an_unterminated_string_loses_its_introducer_only() -> None:
    """A terminal would hide the rest; a parser must not drop a result line for it."""
    assert strip_escapes("\x1b]0;title " + LINE) == "0;title " + LINE
    assert parse_log("\x1b]0;title " + LINE + SUMMARY).tests[0].result == "FAIL"


def test_carriage_returns_and_tabs_stay() -> None:
    assert strip_escapes("PASS\t  96\r") == "PASS\t  96\r"


def test_form_feeds_and_line_separators_do_not_split_a_result_line() -> None:
    """`str.splitlines` splits at these; a console's lines end at LF only."""
    for separator in ("\x0c", "\x1c", "\x85", "\u2028"):
        run = parse_log(LINE.replace("(run as", f"{separator}(run as") + SUMMARY)
        assert [t.result for t in run.tests] == ["FAIL"], repr(separator)
