"""bpftrace JSON: the documented shapes read right, anything else is one line naming the field.

Property-based: random and hostile JSON (and random bytes) never raise anything but
`BpftraceFileError`, each case in a forked child under a time and memory cap.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.metrics.bpftrace_files import (
    ArcTrace,
    BpftraceFileError,
    TxgTrace,
    ZioTrace,
    parse_trace,
    read_trace,
)
from tests.fixtures.capped import run_capped
from tests.fixtures.metrics_history import RUNS_DIR

P = Path("run/debian13/bpftrace/x.json")
SAMPLE = next(RUNS_DIR.glob("*/debian13"))


def test_zio_buckets_become_cumulative_seconds() -> None:
    text = json.dumps(
        {
            "script": "zio",
            "attached": True,
            "unit": "us",
            "histograms": {
                "read": [
                    {"low": 0, "high": 1, "count": 2},
                    {"low": 1, "high": 2, "count": 3},
                    {"low": 2, "high": None, "count": 1},
                ]
            },
            "sums": {"read": 10},
        }
    )
    trace = parse_trace(P, "zio", text)
    assert isinstance(trace, ZioTrace)
    hist = trace.histograms["read"]
    assert hist.buckets == ((1e-6, 2), (2e-6, 5))
    assert hist.count == 6
    assert hist.sum_s == pytest.approx(10e-6)


def test_txg_and_arc() -> None:
    txg = parse_trace(
        P,
        "txg",
        '{"script": "txg", "attached": true, "unit": "ms",'
        ' "syncs": [{"time": 1.5, "pool": "testpool", "duration": 250}]}',
    )
    assert isinstance(txg, TxgTrace)
    assert txg.syncs[0].duration_s == pytest.approx(0.25)
    arc = parse_trace(
        P,
        "arc",
        '{"attached": true, "totals": {"reads": 100, "misses": 10,'
        ' "moved_to": {"mru": 4}, "evicted_bytes": {"mfu": 4096}}}',
    )
    assert isinstance(arc, ArcTrace)
    assert arc.hit_ratio == pytest.approx(0.9)
    assert arc.evicted_bytes == {"mfu": 4096}


def test_no_reads_is_no_ratio_not_a_perfect_one() -> None:
    arc = parse_trace(P, "arc", '{"attached": true, "totals": {"reads": 0, "misses": 0}}')
    assert isinstance(arc, ArcTrace)
    assert arc.hit_ratio is None


def test_a_script_that_did_not_attach() -> None:
    trace = parse_trace(P, "zio", '{"script": "zio", "attached": false}')
    assert isinstance(trace, ZioTrace)
    assert not trace.attached
    assert trace.histograms == {}


@pytest.mark.parametrize(
    ("script", "text", "where"),
    [
        ("zio", "{", "JSON"),
        ("zio", "[]", "top level"),
        ("zio", '{"attached": "yes"}', "attached"),
        ("zio", '{"script": "txg", "attached": true}', "script"),
        ("zio", '{"attached": true, "unit": "parsec", "histograms": {}}', "unit"),
        (
            "zio",
            '{"attached": true, "unit": "us", "histograms": {"read": '
            '[{"low": 4, "high": 2, "count": 1}]}}',
            "histograms.read[0]",
        ),
        (
            "zio",
            '{"attached": true, "unit": "us", "histograms": {"read": '
            '[{"low": 0, "high": null, "count": 1}, {"low": 1, "high": 2, "count": 1}]}}',
            "histograms.read[0].high",
        ),
        (
            "zio",
            '{"attached": true, "unit": "us", "histograms": {"read": '
            '[{"low": 0, "high": 1, "count": -1}]}}',
            "histograms.read[0].count",
        ),
        (
            "txg",
            '{"attached": true, "unit": "s", "syncs": [{"time": 1, "pool": "", "duration": 1}]}',
            "syncs[0].pool",
        ),
        ("arc", '{"attached": true, "totals": {"reads": 1, "misses": 2}}', "totals"),
    ],
)
def test_malformed_files_name_the_field(script: str, text: str, where: str) -> None:
    with pytest.raises(BpftraceFileError) as info:
        parse_trace(P, script, text)
    message = str(info.value)
    assert message.startswith(f"{P}: {where}:"), message
    assert "\n" not in message


def test_absent_file_is_none(tmp_path: Path) -> None:
    assert read_trace(tmp_path, "zio") is None


def test_the_fixture_samples_read(tmp_path: Path) -> None:
    for script in ("zio", "txg", "arc"):
        trace = read_trace(SAMPLE, script)
        assert trace is not None and trace.attached, script


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "bpftrace").mkdir()
    big = tmp_path / "bpftrace" / "zio.json"
    with big.open("wb") as handle:
        handle.truncate((32 << 20) + 1)
    with pytest.raises(BpftraceFileError, match="larger than 32 MiB"):
        read_trace(tmp_path, "zio")


def _parse_any(script: str, text: str) -> None:
    with contextlib.suppress(BpftraceFileError):
        parse_trace(P, script, text)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)


def _shaped(script: str) -> st.SearchStrategy[Any]:
    """Near-valid documents: the right keys with hostile values."""
    bucket = st.fixed_dictionaries(
        {
            "low": _json | st.integers(0, 10**6),
            "high": _json | st.integers(0, 10**6),
            "count": _json | st.integers(0, 10**6),
        }
    )
    return st.fixed_dictionaries(
        {
            "script": st.just(script) | _json,
            "attached": st.just(True) | _json,
            "unit": st.sampled_from(["ns", "us", "ms", "s"]) | _json,
            "histograms": st.dictionaries(st.text(max_size=70), st.lists(bucket, max_size=30))
            | _json,
            "sums": st.dictionaries(st.text(max_size=5), _json) | _json,
            "syncs": st.lists(
                st.fixed_dictionaries({"time": _json, "pool": _json, "duration": _json}),
                max_size=10,
            )
            | _json,
            "totals": st.fixed_dictionaries(
                {"reads": _json, "misses": _json, "moved_to": _json, "evicted_bytes": _json}
            )
            | _json,
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.sampled_from(["zio", "txg", "arc"]), data=st.data())
def test_hostile_documents_never_raise_anything_else(script: str, data: st.DataObject) -> None:
    doc = data.draw(_shaped(script) | _json)
    run_capped(_parse_any, script, json.dumps(doc, allow_nan=True))


@settings(max_examples=80, deadline=None)
@given(script=st.sampled_from(["zio", "txg", "arc"]), raw=st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_else(script: str, raw: bytes) -> None:
    run_capped(_parse_any, script, raw.decode("utf-8", errors="replace"))


def test_deep_nesting_is_one_line() -> None:
    with pytest.raises(BpftraceFileError):
        parse_trace(P, "zio", "[" * 100_000 + "]" * 100_000)
