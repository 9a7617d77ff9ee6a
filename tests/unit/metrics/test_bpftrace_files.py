"""The exporter's reading of `bpftrace/<name>.json` (schema klab-bpftrace/1).

Real files first: the project's parser turns the real bpftrace captures of
tests/fixtures/bpftrace/ into JSON, and the exporter's histograms must add up to the
parser's own summary.  Then malformed files (one line naming the field) and, property-based,
random and hostile documents: never anything but `BpftraceFileError`, each case in a forked
child under a time and memory cap.
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
from imagefactory.testrun.bpftrace import SCHEMA, parse_output
from tests.fixtures.capped import run_capped

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "bpftrace"
P = Path("run/debian13/bpftrace/x.json")


def parsed(capture: str, script: str) -> dict[str, Any]:
    return parse_output((CAPTURES / capture / f"{script}.txt").read_text(), script)


def test_zio_histograms_add_up_to_the_parsers_summary() -> None:
    doc = parsed("host-emulated", "zio")
    trace = parse_trace(P, "zio", json.dumps(doc))
    assert isinstance(trace, ZioTrace) and trace.attached
    ops = doc["summary"]["ops"]
    assert set(trace.histograms) == set(ops)
    for op, hist in trace.histograms.items():
        assert hist.count == ops[op]["count"]
        counts = [c for _, c in hist.buckets]
        assert counts == sorted(counts) and counts[-1] <= hist.count
        bounds = [b for b, _ in hist.buckets]
        assert bounds == sorted(bounds)
        # The parser's p99 is the upper bound of the bucket holding it.
        p99 = ops[op]["p99_s"]
        assert next(c for b, c in hist.buckets if b >= p99) >= 0.99 * hist.count


def test_txg_and_arc_from_real_captures() -> None:
    txg_doc = parsed("host-emulated", "txg")
    txg = parse_trace(P, "txg", json.dumps(txg_doc))
    assert isinstance(txg, TxgTrace)
    # Every report's sync_ms histogram, added up (END prints only the total count: the syncs
    # after the last report are in the summary's count, not in any histogram).
    expected: dict[str, int] = {}
    for interval in txg_doc["intervals"]:
        for pool, rows in interval["maps"]["sync_ms"]["series"].items():
            expected[pool] = expected.get(pool, 0) + sum(r["count"] for r in rows)
    assert {p: h.count for p, h in txg.histograms.items()} == expected
    pools = txg_doc["summary"]["pools"]
    assert all(txg.histograms[p].count <= pools[p]["syncs"] for p in pools)
    arc_doc = parsed("host-emulated", "arc")
    arc = parse_trace(P, "arc", json.dumps(arc_doc))
    assert isinstance(arc, ArcTrace)
    assert arc.hit_ratio == pytest.approx(arc_doc["summary"]["hit_ratio"])
    assert arc.moved_to["mfu"] == arc_doc["summary"]["moved_to"]["mfu"]


@pytest.mark.parametrize("script", ["zio", "txg", "arc"])
def test_a_script_that_did_not_attach(script: str) -> None:
    trace = parse_trace(P, script, json.dumps(parsed("host-noattach", script)))
    assert not trace.attached


def _doc(script: str, **fields: Any) -> str:
    return json.dumps({"schema": SCHEMA, "script": script, "attached": True, **fields})


def _zio_buckets(rows: Any) -> str:
    maps = {"latency_us": {"kind": "histogram", "unit": "seconds", "series": {"read": rows}}}
    return _doc("zio", intervals=[{"maps": maps}])


@pytest.mark.parametrize(
    ("script", "text", "where"),
    [
        ("zio", "{", "JSON"),
        ("zio", "[]", "top level"),
        ("zio", '{"schema": "other/1"}', "schema"),
        ("zio", _doc("txg"), "script"),
        ("zio", json.dumps({"schema": SCHEMA, "script": "zio", "attached": 1}), "attached"),
        ("zio", _doc("zio", intervals={}), "intervals"),
        (
            "zio",
            _zio_buckets([{"lower": 4, "upper": 2, "count": 1}]),
            "intervals[0].maps.latency_us.series.read[0]",
        ),
        (
            "zio",
            _zio_buckets([{"lower": 0, "upper": 1, "count": -1}]),
            "intervals[0].maps.latency_us.series.read[0].count",
        ),
        (
            "zio",
            _zio_buckets(
                [{"lower": 0, "upper": None, "count": 1}, {"lower": 1, "upper": 2, "count": 1}]
            ),
            "latency_us.read",
        ),
        ("arc", _doc("arc", summary={"hit_ratio": 2}), "summary.hit_ratio"),
        ("arc", _doc("arc", summary={"moved_to": {"mru": "x"}}), "summary.moved_to.mru"),
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


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "bpftrace").mkdir()
    with (tmp_path / "bpftrace" / "zio.json").open("wb") as handle:
        handle.truncate((64 << 20) + 1)
    with pytest.raises(BpftraceFileError, match="larger than 64 MiB"):
        read_trace(tmp_path, "zio")


def test_deep_nesting_is_one_line() -> None:
    with pytest.raises(BpftraceFileError):
        parse_trace(P, "zio", "[" * 100_000 + "]" * 100_000)


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
_num = _json | st.integers(-10, 10**6) | st.floats(allow_nan=True, allow_infinity=True)


def _shaped(script: str) -> st.SearchStrategy[Any]:
    """Near-valid documents: the right keys with hostile values."""
    bucket = st.fixed_dictionaries({"lower": _num, "upper": _num, "count": _num})
    histogram = st.fixed_dictionaries(
        {
            "kind": st.just("histogram") | _json,
            "series": st.dictionaries(st.text(max_size=70), st.lists(bucket, max_size=20)) | _json,
        }
    )
    maps = st.fixed_dictionaries({"latency_us": histogram, "sync_ms": histogram}) | _json
    return st.fixed_dictionaries(
        {
            "schema": st.just(SCHEMA) | _json,
            "script": st.just(script) | _json,
            "attached": st.just(True) | _json,
            "intervals": st.lists(st.fixed_dictionaries({"maps": maps}) | _json, max_size=4)
            | _json,
            "summary": st.fixed_dictionaries(
                {"hit_ratio": _num, "moved_to": _json, "evicted_bytes": _json}
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
