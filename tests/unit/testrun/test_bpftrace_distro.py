"""A distro's traces over several clones and boots read as one (bpftrace_files.distro_traces).

The clones are made from the real captures of a quick run on the Debian golden: each
script's text cut in two at a report boundary, the halves put where `klab test --clones 2`
puts a clone's artifacts (`<distro>/clone-1/`, `<distro>/clone-2/`) and turned into JSON by
the stage's own writer.  What the reports hold (every histogram bucket, every count) must
come out as the parse of the whole text; what only END prints (the halves' totals) is the
sum of the halves' own figures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.metrics.bpftrace_files import BpftraceFileError, ZioTrace, read_trace
from imagefactory.testrun.bpftrace import SCHEMA, SCRIPTS, parse_output
from imagefactory.testrun.bpftrace_files import distro_traces, piece_dirs, write_trace_json
from imagefactory.testrun.bpftrace_merge import merge_traces
from imagefactory.testrun.bpftrace_units import quantile
from tests.fixtures.capped import run_capped

CAPTURES = Path(__file__).parents[2] / "fixtures" / "bpftrace" / "debian13-quick-tcg"


def _halves(text: str) -> tuple[str, str]:
    """The text cut before its middle report; the second half keeps bpftrace's header."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("--- ") and ":" in line]
    cut = starts[len(starts) // 2]
    return "".join(lines[:cut]), "".join(lines[: starts[0]] + lines[cut:])


def make_clones(distro: Path, scripts: tuple[str, ...] = SCRIPTS) -> list[dict[str, Any]]:
    """clone-1/ and clone-2/ of `distro` from the real captures; each half's own parse."""
    halves: list[dict[str, Any]] = [{}, {}]
    for script in scripts:
        for k, text in enumerate(_halves((CAPTURES / f"{script}.txt").read_text()), 1):
            folder = distro / f"clone-{k}" / "bpftrace"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{script}.txt").write_text(text)
            halves[k - 1][script] = parse_output(text, script)
    for k in (1, 2):
        write_trace_json(distro / f"clone-{k}", scripts)
    return halves


def _buckets(doc: dict[str, Any]) -> Counter[tuple[str, str, Any, Any]]:
    """Every report's histogram buckets added up: (map, key, lower, upper) -> count."""
    out: Counter[tuple[str, str, Any, Any]] = Counter()
    for interval in doc["intervals"]:
        for name, entry in interval["maps"].items():
            if entry["kind"] == "histogram":
                for key, rows in entry["series"].items():
                    for b in rows:
                        out[(name, key, b["lower"], b["upper"])] += b["count"]
    return out


def _counts(doc: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Every report's counters added up: (map, key) -> sum."""
    out: dict[tuple[str, str], float] = {}
    for interval in doc["intervals"]:
        for name, entry in interval["maps"].items():
            if entry["kind"] == "scalar":
                for key, value in entry["values"].items():
                    if isinstance(value, int | float):
                        out[(name, key)] = out.get((name, key), 0) + value
    return out


@pytest.mark.parametrize("script", SCRIPTS)
def test_two_clones_combine_to_the_whole_capture(tmp_path: Path, script: str) -> None:
    distro = tmp_path / "debian13"
    first, second = (h[script] for h in make_clones(distro, (script,)))
    whole = parse_output((CAPTURES / f"{script}.txt").read_text(), script)
    merged = distro_traces(distro, script)

    assert merged is not None
    json.dumps(merged, allow_nan=False)
    assert merged["schema"] == SCHEMA and merged["complete"] and merged["errors"] == []
    assert [s["source"] for s in merged["sources"]] == ["clone-1", "clone-2"]
    assert [i["clock"] for i in merged["intervals"]] == [i["clock"] for i in whole["intervals"]]
    assert [i["source"] for i in merged["intervals"]] == ["clone-1"] * len(first["intervals"]) + [
        "clone-2"
    ] * len(second["intervals"])
    assert _buckets(whole) or _counts(whole)  # the capture holds reports to compare
    assert _buckets(merged) == _buckets(whole)
    assert _counts(merged) == _counts(whole)

    summary, halves = merged["summary"], (first["summary"], second["summary"])
    if script == "zio":
        assert summary["ops"] == whole["summary"]["ops"]
    elif script == "txg":
        for pool, figures in summary["pools"].items():
            mine = whole["summary"]["pools"][pool]
            assert (figures["p50_s"], figures["p99_s"]) == (mine["p50_s"], mine["p99_s"])
            assert figures["syncs"] == sum(h["pools"].get(pool, {}).get("syncs", 0) for h in halves)
        assert len(summary["timeline"]) == len(whole["summary"]["timeline"])
        assert {p["source"] for p in summary["timeline"]} == {"clone-1", "clone-2"}
    elif script == "arc":
        calls = sum(h["arc_read_calls"] for h in halves)
        misses = sum(h["miss_completions"] for h in halves)
        assert (summary["arc_read_calls"], summary["miss_completions"]) == (calls, misses)
        assert summary["hit_ratio"] == pytest.approx((calls - misses) / calls)
        mean = (halves[0]["hit_ratio"] + halves[1]["hit_ratio"]) / 2
        assert summary["hit_ratio"] != pytest.approx(mean)  # summed counts, not a mean
        assert summary["moved_to"] == whole["summary"]["moved_to"]
    else:
        assert summary["allocated_bytes"] == whole["summary"]["allocated_bytes"]
        assert summary["freed_bytes"] == whole["summary"]["freed_bytes"]
        assert summary["net_bytes"] == halves[0]["net_bytes"] + halves[1]["net_bytes"]


def test_one_clone_is_its_own_file(tmp_path: Path) -> None:
    distro = tmp_path / "debian13"
    (distro / "bpftrace").mkdir(parents=True)
    for script in SCRIPTS:
        (distro / "bpftrace" / f"{script}.txt").write_text((CAPTURES / f"{script}.txt").read_text())
    write_trace_json(distro, SCRIPTS)
    for script in SCRIPTS:
        alone = json.loads((distro / "bpftrace" / f"{script}.json").read_text())
        merged = distro_traces(distro, script)
        assert merged is not None and merged["complete"]
        assert [s["source"] for s in merged["sources"]] == ["."]
        assert _buckets(merged) == _buckets(alone) and _counts(merged) == _counts(alone)
        assert merged["totals"] == alone["totals"]
        timeline = merged["summary"].pop("timeline", None)
        assert merged["summary"] == {k: v for k, v in alone["summary"].items() if k != "timeline"}
        if timeline is not None:
            assert [{**p, "source": "."} for p in alone["summary"]["timeline"]] == timeline


def test_pieces_are_found_in_run_order_and_nothing_else(tmp_path: Path) -> None:
    distro = tmp_path / "debian13"
    for rel in (
        "boot-2",
        "clone-10",
        "clone-2/boot-3",
        "clone-2/boot-2",
        "clone-1",
        "shard-1-of-2/clone-1",
        "test_results/clone-1",  # a test's own directory is no piece
        "clone-x",
    ):
        (distro / rel).mkdir(parents=True)
    (distro / "clone-3").symlink_to(distro / "clone-1")
    found = [p.relative_to(distro).as_posix() for p in piece_dirs(distro)]
    assert found == [
        ".",
        "boot-2",
        "clone-1",
        "clone-2",
        "clone-2/boot-2",
        "clone-2/boot-3",
        "clone-10",
        "shard-1-of-2",
        "shard-1-of-2/clone-1",
    ]


def test_a_crash_s_fresh_boot_adds_its_trace(tmp_path: Path) -> None:
    """clone-1 crashed and went on in clone-1/boot-2: both boots' reports count."""
    distro = tmp_path / "debian13"
    make_clones(distro, ("zio",))
    (distro / "clone-2").rename(distro / "boot-2")
    (distro / "clone-1").rename(tmp_path / "first")
    (tmp_path / "first").rename(distro / "clone-1")
    (distro / "boot-2").rename(distro / "clone-1" / "boot-2")
    merged = distro_traces(distro, "zio")
    whole = parse_output((CAPTURES / "zio.txt").read_text(), "zio")
    assert merged is not None
    assert [s["source"] for s in merged["sources"]] == ["clone-1", "clone-1/boot-2"]
    assert _buckets(merged) == _buckets(whole)


def test_a_script_that_did_not_attach_in_one_clone_is_said(tmp_path: Path) -> None:
    distro = tmp_path / "debian13"
    make_clones(distro, ("zio",))
    (distro / "clone-2" / "bpftrace" / "zio.txt").unlink()
    write_trace_json(distro / "clone-2", ("zio",))  # the stage's record of a missing trace
    first = parse_output(_halves((CAPTURES / "zio.txt").read_text())[0], "zio")
    merged = distro_traces(distro, "zio")

    assert merged is not None
    assert merged["attached"] is True and merged["complete"] is False
    assert merged["reason"] == "clone-2: no output: the guest brought back no zio.txt"
    assert [(s["source"], s["attached"]) for s in merged["sources"]] == [
        ("clone-1", True),
        ("clone-2", False),
    ]
    assert _buckets(merged) == _buckets(first)
    zio = read_trace(distro, "zio")
    assert isinstance(zio, ZioTrace) and zio.attached is False  # klab_bpftrace_script_up 0
    assert sum(h.count for h in zio.histograms.values()) == sum(_buckets(first).values())


def _shift_read_bounds(path: Path) -> None:
    doc = json.loads(path.read_text())
    for interval in doc["intervals"]:
        for b in interval["maps"]["latency_us"]["series"].get("read", []):
            b["upper"] = b["upper"] * 1.5  # another grid: [a, 1.5b) overlaps the next bucket
    path.write_text(json.dumps(doc))


def test_differing_bounds_are_an_error_never_a_mix(tmp_path: Path) -> None:
    distro = tmp_path / "debian13"
    make_clones(distro, ("zio",))
    _shift_read_bounds(distro / "clone-2" / "bpftrace" / "zio.json")
    merged = distro_traces(distro, "zio")

    assert merged is not None and merged["complete"] is False
    [error] = merged["errors"]
    assert error.startswith("latency_us[read]: bucket bounds differ") and "clone-" in error
    assert "read" not in merged["summary"]["ops"] and "write" in merged["summary"]["ops"]
    assert not any(key == "read" for (_, key, _, _) in _buckets(merged))
    with pytest.raises(BpftraceFileError, match=r"clone-1,clone-2.*latency_us\[read\]"):
        read_trace(distro, "zio")


def test_a_damaged_piece_is_an_error(tmp_path: Path) -> None:
    distro = tmp_path / "debian13"
    make_clones(distro, ("arc",))
    (distro / "clone-2" / "bpftrace" / "arc.json").write_text('{"schema": "klab-bpftrace/1"')
    merged = distro_traces(distro, "arc")
    assert merged is not None and merged["complete"] is False
    assert merged["errors"][0].startswith("clone-2: unreadable arc.json: arc.json is not JSON")
    with pytest.raises(BpftraceFileError, match="clone-2: unreadable"):
        read_trace(distro, "arc")


def test_no_piece_no_trace(tmp_path: Path) -> None:
    (tmp_path / "debian13" / "clone-1").mkdir(parents=True)
    assert distro_traces(tmp_path / "debian13", "zio") is None
    assert read_trace(tmp_path / "debian13", "zio") is None


# -- the merge as a property ------------------------------------------------------------

_GRID = [(None, 0.0)] + [(float(2**i), float(2 ** (i + 1))) for i in range(12)] + [(4096.0, None)]
_bucket_set = st.dictionaries(st.sampled_from(range(len(_GRID))), st.integers(1, 10**9), max_size=8)
_report = st.dictionaries(st.sampled_from(["read", "write", "free"]), _bucket_set, max_size=3)
_piece = st.tuples(st.lists(_report, max_size=5), st.integers(0, 10**6), st.integers(0, 10**6))


def _doc(reports: list[dict[str, dict[int, int]]], calls: int, misses: int) -> dict[str, Any]:
    intervals = [
        {
            "clock": "00:00:00",
            "at": None,
            "elapsed_s": 5.0 * i,
            "maps": {
                "latency_us": {
                    "kind": "histogram",
                    "unit": "seconds",
                    "series": {
                        op: [
                            {"lower": _GRID[g][0], "upper": _GRID[g][1], "count": n}
                            for g, n in sorted(buckets.items())
                        ]
                        for op, buckets in report.items()
                    },
                },
                "ops": {
                    "kind": "scalar",
                    "unit": "count",
                    "values": {"arc_read calls": calls, "miss completions": min(misses, calls)},
                },
            },
        }
        for i, report in enumerate(reports)
    ]
    return {
        "schema": SCHEMA,
        "script": "zio",
        "attached": True,
        "reason": None,
        "ended": True,
        "intervals": intervals,
        "totals": {},
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(_piece, min_size=1, max_size=4))
def test_merged_buckets_preserve_every_count(pieces: list[Any]) -> None:
    docs = [(f"clone-{k}", _doc(*p)) for k, p in enumerate(pieces, 1)]
    merged = merge_traces("zio", docs)
    expected: Counter[tuple[str, str, Any, Any]] = Counter()
    for _, doc in docs:
        expected += _buckets(doc)
    assert merged["errors"] == [] and merged["complete"]
    assert _buckets(merged) == expected
    counted: dict[tuple[str, str], float] = {}
    for _, doc in docs:
        for key, value in _counts(doc).items():
            counted[key] = counted.get(key, 0) + value
    assert _counts(merged) == counted
    for op, figures in merged["summary"]["ops"].items():
        rows = sorted(
            ((lo, hi, n) for (_, key, lo, hi), n in expected.items() if key == op),
            key=lambda r: -1.0 if r[0] is None else r[0],
        )
        assert figures["count"] == sum(n for _, _, n in rows)
        buckets = [{"lower": lo, "upper": hi, "count": n} for lo, hi, n in rows]
        assert figures["p99_s"] == quantile(buckets, 0.99)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=25,
)


def _merge_any(parts: list[Any]) -> None:
    for script in SCRIPTS:
        json.dumps(merge_traces(script, parts), allow_nan=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(
        st.tuples(
            st.sampled_from(["clone-1", "clone-2", "boot-2"]),
            _json | _piece.map(lambda p: _doc(*p)),
        ),
        max_size=3,
    )
)
def test_hostile_pieces_never_raise(pieces: list[Any]) -> None:
    run_capped(_merge_any, pieces)


# -- the readers: report, exporter, fingerprint -----------------------------------------


def _run_with_two_clones(tmp_path: Path) -> Path:
    """A finished run directory whose one distro ran in two clones (real traces)."""
    run_dir = tmp_path / "run-1"
    make_clones(run_dir / "debian13")
    entry = {
        "distro": "debian13",
        "status": "passed",
        "tests": [],
        "golden_build_id": "build-1",
        "zfs_version": "2.3.9",
        "context": {"accel": "tcg", "kernel": "6.12"},
    }
    run = {"run_id": "run-1", "selection": "suite=quick", "distros": [entry]}
    (run_dir / "run.json").write_text(json.dumps(run))
    return run_dir


def test_the_report_draws_both_clones(tmp_path: Path) -> None:
    from imagefactory.report.model import gather
    from imagefactory.report.render import render

    run_dir = _run_with_two_clones(tmp_path)
    whole = parse_output((CAPTURES / "zio.txt").read_text(), "zio")
    [distro] = gather(run_dir, history=tmp_path / "no-history.db").distros
    traces = distro.traces
    assert {name: s["attached"] for name, s in traces["status"].items()} == dict.fromkeys(
        SCRIPTS, True
    )
    drawn = sum(sum(d["data"]) for d in traces["zio"]["histogram"]["datasets"])
    assert drawn == sum(op["count"] for op in whole["summary"]["ops"].values()) > 0
    labels = {d["label"] for d in traces["zio"]["p99_ms"]["datasets"]}
    assert {"read p99 (clone-1)", "read p99 (clone-2)"} <= labels
    assert traces["arc"]["arc_read_calls"] > 0
    page = render(gather(run_dir, history=tmp_path / "no-history.db"))
    assert "No bpftrace output for this distro" not in page
    assert "read p99 (clone-2)" in page


def test_the_exporter_reads_both_clones(tmp_path: Path) -> None:
    from imagefactory.metrics.bpftrace_files import ArcTrace, TxgTrace

    distro = _run_with_two_clones(tmp_path) / "debian13"
    whole = {s: parse_output((CAPTURES / f"{s}.txt").read_text(), s) for s in SCRIPTS}
    zio = read_trace(distro, "zio")
    assert isinstance(zio, ZioTrace) and zio.attached
    assert {op: h.count for op, h in zio.histograms.items()} == {
        op: f["count"] for op, f in whole["zio"]["summary"]["ops"].items()
    }
    txg = read_trace(distro, "txg")
    assert isinstance(txg, TxgTrace) and txg.attached
    syncs = Counter[str]()
    for (name, pool, _, _), n in _buckets(whole["txg"]).items():
        if name == "sync_ms":
            syncs[pool] += n
    assert {pool: h.count for pool, h in txg.histograms.items()} == dict(syncs)
    arc = read_trace(distro, "arc")
    merged = distro_traces(distro, "arc")
    assert isinstance(arc, ArcTrace) and merged is not None
    assert arc.attached and arc.hit_ratio == merged["summary"]["hit_ratio"]


def test_the_fingerprint_measures_both_clones(tmp_path: Path) -> None:
    from imagefactory.testrun.fingerprint import derive

    run_dir = _run_with_two_clones(tmp_path)
    whole = parse_output((CAPTURES / "zio.txt").read_text(), "zio")
    metrics = derive(run_dir, "debian13", history=tmp_path / "no-history.db")["metrics"]
    for op, figures in whole["summary"]["ops"].items():
        assert metrics[f"zio/{op}/p99_s"] == figures["p99_s"]
    merged_arc = distro_traces(run_dir / "debian13", "arc")
    assert merged_arc is not None
    assert metrics["arc/hit_ratio"] == merged_arc["summary"]["hit_ratio"]
    assert "txg/sync_p99_s" in metrics
    # A clone whose zio did not attach: a partial figure is no fingerprint.
    (run_dir / "debian13" / "clone-2" / "bpftrace" / "zio.txt").unlink()
    write_trace_json(run_dir / "debian13" / "clone-2", ("zio",))
    metrics = derive(run_dir, "debian13", history=tmp_path / "no-history.db")["metrics"]
    assert not any(k.startswith("zio/") for k in metrics) and "arc/hit_ratio" in metrics


def test_a_bare_not_attached_record_counts_as_a_piece(tmp_path: Path) -> None:
    folder = tmp_path / "debian13" / "clone-2" / "bpftrace"
    folder.mkdir(parents=True)
    (folder / "arc.json").write_text(
        json.dumps({"schema": SCHEMA, "script": "arc", "attached": False, "reason": "ERROR"})
    )
    merged = distro_traces(tmp_path / "debian13", "arc")
    assert merged is not None
    assert (merged["attached"], merged["complete"], merged["reason"]) == (False, False, "ERROR")
