"""The bpftrace parser on random and hostile text: never a traceback, never a hang or bomb.

Each case runs in a forked child under generous time and memory caps
(tests/fixtures/capped.py) that only catch hangs and bombs; nothing here measures speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.testrun.bpftrace import SCRIPTS, parse_output
from tests.fixtures.capped import run_capped

FIXTURES = Path(__file__).parents[2] / "fixtures" / "bpftrace"
REAL_LINES = sorted(
    {line for p in FIXTURES.glob("*/*.txt") for line in p.read_text(errors="replace").splitlines()}
)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _check(doc: dict[str, Any]) -> None:
    json.dumps(doc, allow_nan=False)
    assert isinstance(doc["attached"], bool)
    if not doc["attached"]:
        assert isinstance(doc["reason"], str) and "\n" not in doc["reason"]
        return
    reports = [*(i["maps"] for i in doc["intervals"]), doc["totals"]]
    for maps in reports:
        for entry in maps.values():
            if entry["kind"] == "histogram":
                for buckets in entry["series"].values():
                    for b in buckets:
                        assert isinstance(b["count"], int) and b["count"] > 0
                        if b["lower"] is not None and b["upper"] is not None:
                            assert b["lower"] <= b["upper"]
    elapsed = [i["elapsed_s"] for i in doc["intervals"]]
    assert all(e >= 0 for e in elapsed)


def _parse_all(text: str) -> None:
    for script in (*SCRIPTS, "other"):
        _check(parse_output(text, script))


_NUMBER = st.one_of(
    st.integers(-(10**21), 10**21).map(str),
    st.sampled_from(["0", "1K", "512", "1M", "2P", "-0", "99999999999999999999P", "", "x"]),
)
_KEY = st.text(alphabet="ab ,[]:@\\|()\t-", max_size=12)


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from(REAL_LINES))
    if kind == 1:
        return f"@{draw(st.sampled_from(['latency_us', 'sync_ms', 'x', '9', '']))}[{draw(_KEY)}]: "
    if kind == 2:
        name = draw(st.sampled_from(["done", "total", "net_bytes"]))
        return f"@{name}[{draw(_KEY)}]: {draw(_NUMBER)}"
    if kind == 3:
        lo, hi, n = draw(_NUMBER), draw(_NUMBER), draw(_NUMBER)
        form = draw(st.sampled_from(["[{lo}, {hi})", "[{lo}]", "(..., {hi})", "[{lo}, ...)"]))
        return f"{form.format(lo=lo, hi=hi)}   {n} |{'@' * draw(st.integers(0, 60))}|"
    if kind == 4:
        digits = draw(st.text(alphabet="0123456789", min_size=2, max_size=2))
        return f"--- {digits}:{draw(st.sampled_from(['00', '59', '99']))}:{digits} ---"
    if kind == 5:
        return draw(st.sampled_from(["zio.bt: done; x", "Attaching 3 probes...", "ERROR: attach"]))
    return draw(st.text(max_size=80))


@SETTINGS
@given(st.lists(_line(), max_size=80))
def test_mixed_real_and_hostile_lines(lines: list[str]) -> None:
    run_capped(_parse_all, "\n".join(lines))


@SETTINGS
@given(st.text(max_size=2000))
def test_random_text(text: str) -> None:
    run_capped(_parse_all, text)


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes_decoded_as_the_host_does(data: bytes) -> None:
    run_capped(_parse_all, data.decode("utf-8", errors="replace"))


def _bombs() -> None:
    mib = 1 << 20
    head = "Attaching 1 probe...\n"
    for text in (
        head + "@x[" + "]:" * mib + "\n",  # one huge key full of separators
        head + "ERROR: " * mib + "\n",
        head + "[1, 2)" + " " * mib + "1 |@|\n",
        head + "".join(f"@m[{i}]: {i}\n" for i in range(200_000)),  # keys beyond the cap
        head + "@h[k]: \n" + "[1, 2)   5 |@|\n" * 200_000,  # buckets beyond the cap
        head + "--- 10:00:00 ---\n" * 100_000,
    ):
        for script in SCRIPTS:
            doc = parse_output(text, script)
            _check(doc)
            json.dumps(doc)


def test_huge_lines_and_maps_stay_bounded() -> None:
    run_capped(_bombs, seconds=120)
