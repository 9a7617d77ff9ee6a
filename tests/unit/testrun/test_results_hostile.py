"""The console parser against hostile input: property-based, on the repository's real consoles.

Every case runs in a child process under a time and a memory cap (`capped.py`) that only
catch hangs and bombs; no test here measures speed (bench/results.py does).  The oracle for
escapes and long lines is the parse of the untouched console: a terminal sequence anywhere,
or a megabyte of noise between two lines, must not change a single result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.testrun.capped import CappedParser

LOGS = Path(__file__).parent / "logs"
REAL = {p.name: p.read_bytes() for p in sorted(LOGS.glob("*.log"))}
MIB = 1 << 20

# The caps make each example cost a round trip; the example counts keep the file near 30 s
# on a loaded 2-core machine.
SETTINGS = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def capped() -> Iterator[CappedParser]:
    parser = CappedParser()
    yield parser
    parser.close()


def rows(run: dict[str, Any]) -> dict[str, str]:
    """Test key -> result, as `TestResult.key` spells it."""
    return {
        t["name"] if "identifier" not in t else f"{t['name']} ({t['identifier']})": t["result"]
        for t in run["tests"]
    }


# --- terminal sequences -------------------------------------------------------------------

_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))
_ST = (b"\x1b\\", "\x9c".encode(), b"\x9c")


def _c1(code: int, raw: bool) -> bytes:
    """An 8-bit control as a UTF-8 character, or as the raw byte an 8-bit terminal sends."""
    return bytes([code]) if raw else chr(code).encode()


@st.composite
def escape_sequence(draw: st.DrawFn) -> bytes:
    """One complete ECMA-48 sequence (or a control that introduces none), as bytes."""
    kind = draw(st.sampled_from(["csi", "string", "nf", "single", "control"]))
    raw = draw(st.booleans())
    eight_bit = draw(st.booleans())
    if kind == "csi":
        params = draw(st.text(alphabet=[chr(c) for c in range(0x30, 0x40)], max_size=14))
        inter = draw(st.text(alphabet=[chr(c) for c in range(0x20, 0x30)], max_size=2))
        final = draw(st.sampled_from([chr(c) for c in range(0x40, 0x7F)]))
        head = _c1(0x9B, raw) if eight_bit else b"\x1b["
        return head + (params + inter + final).encode()
    if kind == "string":  # OSC, DCS, SOS, PM, APC
        seven, eight = draw(
            st.sampled_from([("]", 0x9D), ("P", 0x90), ("X", 0x98), ("^", 0x9E), ("_", 0x9F)])
        )
        head = _c1(eight, raw) if eight_bit else b"\x1b" + seven.encode()
        body = draw(st.text(alphabet=_PRINTABLE, max_size=16)).encode()
        end = draw(st.sampled_from([b"\x07", *_ST]))
        return head + body + end
    if kind == "nf":  # charset designations: ESC ( B, ESC ) 0, ESC % G ...
        inter = draw(st.text(alphabet=[chr(c) for c in range(0x20, 0x30)], min_size=1, max_size=2))
        final = draw(st.sampled_from([chr(c) for c in range(0x30, 0x7F)]))
        return b"\x1b" + (inter + final).encode()
    if kind == "single":  # ESC 7, ESC 8, ESC =, ESC >, ESC M, ESC c ...
        final = draw(st.sampled_from([chr(c) for c in range(0x30, 0x7F) if chr(c) not in "[]PX^_"]))
        return b"\x1b" + final.encode()
    # Controls that stand alone: BEL, SO/SI, NUL, DEL, and C1 that introduce nothing.
    code = draw(
        st.sampled_from([0x00, 0x07, 0x08, 0x0B, 0x0C, 0x0E, 0x0F, 0x1C, 0x7F, 0x84, 0x85, 0x9C])
    )
    return _c1(code, raw) if code >= 0x80 else bytes([code])


def _wrapped(log: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Insert each sequence at a position of the original line (right to left, so no
    sequence lands inside another: that would be a different, broken sequence)."""
    lines = log.split(b"\n")
    placed = sorted(
        ((index % len(lines), position, sequence) for index, position, sequence in edits),
        key=lambda edit: (edit[0], -edit[1]),
    )
    for index, position, sequence in placed:
        line = lines[index]
        at = min(position, len(line))
        lines[index] = line[:at] + sequence + line[at:]
    return b"\n".join(lines)


def _edits(log: bytes) -> st.SearchStrategy[tuple[int, int, bytes]]:
    """A sequence before or after a bracket or parenthesis of a result line (around and
    inside `[FAIL]`, `(run as root)`, a timestamp), or anywhere in the console."""
    lines = log.split(b"\n")
    brackets = [
        (i, at)
        for i, line in enumerate(lines)
        if b"Test" in line
        for m in re.finditer(rb"[\[\]()]", line)
        for at in (m.start(), m.end())
    ]
    anywhere = st.tuples(st.integers(0, len(lines) - 1), st.integers(0, 200))
    where = st.one_of(st.sampled_from(brackets), anywhere) if brackets else anywhere
    return st.tuples(where, escape_sequence()).map(lambda t: (t[0][0], t[0][1], t[1]))


@settings(SETTINGS, max_examples=60)
@given(data=st.data(), name=st.sampled_from(sorted(REAL)))
def test_escapes_anywhere_change_no_result(
    capped: CappedParser, data: st.DataObject, name: str
) -> None:
    log = REAL[name]
    edits = data.draw(st.lists(_edits(log), min_size=1, max_size=60))
    clean = capped.parse(log)

    wrapped = capped.parse(_wrapped(log, edits))

    assert wrapped == clean


# --- long lines ---------------------------------------------------------------------------

_NOISE = [
    "FAIL a (x)y ",
    "Test: ",
    "Test (Linux): ",
    "(run as ",
    "root) ",
    "[00:01] ",
    "[FAIL]",
    "[2026-01-01T00:00:00.1] ",
    " ",
    "\t",
    "(",
    ")",
    "PASS 1 ",
    "Results Summary",
    "Log directory: ",
    "Warning: Test '",
    "zfs-tests.sh: ",
    "\x1b[",
    "\x1b]",
    "Tests with results other than PASS that are unexpected:",
]


@settings(SETTINGS, max_examples=12)
@given(
    name=st.sampled_from(sorted(REAL)),
    where=st.integers(0, 10_000),
    pieces=st.lists(st.sampled_from(_NOISE) | st.text(max_size=6), min_size=1, max_size=6),
    length=st.one_of(st.integers(1, 4096), st.integers(MIB - 4096, MIB)),
)
def test_a_megabyte_line_anywhere_drops_no_result(
    capped: CappedParser, name: str, where: int, pieces: list[str], length: int
) -> None:
    log = REAL[name]
    unit = "".join(pieces) or "x"
    noise = (unit * (length // len(unit) + 1))[:length].replace("\n", " ").encode()
    lines = log.split(b"\n")
    at = where % (len(lines) + 1)
    clean = rows(capped.parse(log))

    noisy = rows(capped.parse(b"\n".join([*lines[:at], noise, *lines[at:]])))

    assert {key: noisy.get(key) for key in clean} == clean


def test_the_line_that_once_took_21_seconds_is_parsed(capped: CappedParser) -> None:
    """`'FAIL a (x)y ' * 16000` in a zts-report section (and its 1 MiB cousins elsewhere)."""
    header = "Tests with results other than PASS that are unexpected:\n"
    for body in ("FAIL a (x)y " * 16000, "FAIL a (x)y " * 90_000, "FAIL a (x) " * 95_000):
        for log in (header + body, "Results Summary\n" + body, body):
            run = capped.parse(log.encode())
            assert run["tests"] == []
    ended = capped.parse((header + "FAIL a (x) " * 95_000).encode())
    assert ended["unexpected"][0]["name"] == "a"  # the first `WORD name (`, detail to the end
    assert ended["unexpected"][0]["detail"].endswith("(x")


# --- truncation, random bytes -------------------------------------------------------------


@settings(SETTINGS, max_examples=60)
@given(name=st.sampled_from(sorted(REAL)), cut=st.integers(0, 1 << 16))
def test_a_console_cut_at_any_byte_keeps_its_complete_lines(
    capped: CappedParser, name: str, cut: int
) -> None:
    log = REAL[name]
    cut %= len(log) + 1
    complete_lines = log[: log.rfind(b"\n", 0, cut) + 1]
    whole = rows(capped.parse(complete_lines))

    run = capped.parse(log[:cut])

    # Only the cut line itself may add or change a result, when it kept its `[RESULT]`.
    lone = rows(capped.parse(log[len(complete_lines) : cut]))
    changed = {k for k in rows(run).keys() | whole.keys() if rows(run).get(k) != whole.get(k)}
    assert len(lone) <= 1 and changed <= lone.keys()
    if run["complete"]:
        assert b"Results Summary" in log[:cut]


_TOKENS = [
    *_NOISE,
    "\n",
    "[PASS]",
    "[KILLED]",
    "FAIL\t   1\n",
    "KILLED 2\n",
    "Running Time:\t00:00:0",
]


@settings(SETTINGS, max_examples=60)
@given(
    payload=st.one_of(
        st.binary(max_size=4096),
        st.lists(
            st.sampled_from(_TOKENS)
            | st.text(max_size=8)
            | escape_sequence().map(lambda b: b.decode("utf-8", "replace")),
            max_size=120,
        ).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
    )
)
def test_random_input_never_raises_and_never_hides_a_counted_failure(
    capped: CappedParser, payload: bytes
) -> None:
    run = capped.parse(payload)

    if run["unseen_failures"]:
        assert any(name.startswith("(summary: ") for name in run["unexpected_failures"])
        assert run["mismatch_line"] and "no result line" in run["mismatch_line"]
    assert (run["summary_mismatch"] is None) == (run["mismatch_line"] is None)


@settings(SETTINGS, max_examples=40)
@given(text=st.text(max_size=3000))
def test_random_text_never_raises(capped: CappedParser, text: str) -> None:
    run = capped.parse(text.encode("utf-8", "surrogatepass"), mode="t")

    assert isinstance(run["tests"], list)
