"""Chart series from the parsed bpftrace JSON (testrun/bpftrace.py): what the page plots.

The page's script only draws: every number is computed here, in Python, where it is
tested.  zio: the latency histogram of the whole run per operation (bpftrace's power-of-two
buckets) and each report's p99 over time; txg: per pool, the slowest sync and the number of
syncs in each report.  Latencies are shown in milliseconds, the unit people read them in.
A distro run in several clones or boots (testrun/bpftrace_merge.py) has its histograms
summed and one time-series line per clone or boot: each has its own clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imagefactory.testrun.bpftrace_units import merge_buckets, quantile


def duration_label(seconds: float | None) -> str:
    """`4 µs`, `1.5 ms`, `2 s`: a bucket bound as people read it."""
    if seconds is None:
        return "∞"
    if seconds == 0:
        return "0"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g} {unit}"
    return f"{seconds:.3g} s"


def _many_sources(doc: Mapping[str, Any]) -> bool:
    """Whether the trace combines several clones or boots (testrun/bpftrace_merge.py)."""
    return len({s.get("source") for s in doc.get("sources") or []}) > 1


def _labelled(label: str, point: Mapping[str, Any], many: bool) -> str:
    return f"{label} ({point['source']})" if many and point.get("source") else label


def _zio(doc: Mapping[str, Any]) -> dict[str, Any]:
    per_op: dict[str, list[list[dict[str, Any]]]] = {}
    for interval in doc.get("intervals", []):
        entry = interval.get("maps", {}).get("latency_us")
        if isinstance(entry, dict) and entry.get("kind") == "histogram":
            for op, buckets in entry.get("series", {}).items():
                per_op.setdefault(op, []).append(buckets)
    merged = {op: merge_buckets(parts) for op, parts in sorted(per_op.items())}
    bounds = sorted(
        {(b["lower"], b["upper"]) for buckets in merged.values() for b in buckets},
        key=lambda k: k[0] if k[0] is not None else float("-inf"),
    )
    labels = [f"{duration_label(lo)}–{duration_label(hi)}" for lo, hi in bounds]
    histogram = [
        {
            "label": op,
            "data": [
                next((b["count"] for b in buckets if (b["lower"], b["upper"]) == k), 0)
                for k in bounds
            ],
        }
        for op, buckets in merged.items()
    ]
    p99 = []
    many = _many_sources(doc)
    for op in merged:
        # One line per clone and boot: their clocks start at their own first report.
        lines: dict[str, list[dict[str, Any]]] = {}
        for interval in doc.get("intervals", []):
            entry = interval.get("maps", {}).get("latency_us", {})
            buckets = entry.get("series", {}).get(op) if isinstance(entry, dict) else None
            value = quantile(buckets, 0.99) if buckets else None
            points = lines.setdefault(_labelled(f"{op} p99", interval, many), [])
            if value is not None:
                points.append({"x": interval.get("elapsed_s"), "y": value * 1000})
        p99 += [{"label": label, "data": points} for label, points in lines.items()]
    return {
        "histogram": {"labels": labels, "datasets": histogram},
        "p99_ms": {"datasets": p99},
        "ops": doc.get("summary", {}).get("ops", {}),
    }


def _txg(doc: Mapping[str, Any]) -> dict[str, Any]:
    summary = doc.get("summary", {})
    slowest: dict[str, list[dict[str, Any]]] = {}
    syncs: dict[str, list[dict[str, Any]]] = {}
    many = _many_sources(doc)
    for point in summary.get("timeline", []):
        pool = _labelled(str(point.get("pool")), point, many)  # clones' pools are distinct
        if point.get("slowest_s") is not None:
            slowest.setdefault(pool, []).append(
                {"x": point["elapsed_s"], "y": point["slowest_s"] * 1000}
            )
        syncs.setdefault(pool, []).append({"x": point["elapsed_s"], "y": point.get("syncs", 0)})
    datasets = [
        {"label": f"{pool} slowest sync (ms)", "data": data, "yAxisID": "ms"}
        for pool, data in sorted(slowest.items())
    ] + [
        {"label": f"{pool} syncs", "data": data, "yAxisID": "count"}
        for pool, data in sorted(syncs.items())
    ]
    return {"timeline": {"datasets": datasets}, "pools": summary.get("pools", {})}


def trace_charts(traces: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One distro's chart data: {"status": {script: {attached, reason}}, "zio", "txg",
    "arc", "spl"}; a script that did not attach has only its status."""
    out: dict[str, Any] = {
        "status": {
            name: {"attached": bool(doc.get("attached")), "reason": doc.get("reason")}
            for name, doc in traces.items()
        }
    }
    for name, doc in traces.items():
        if not doc.get("attached"):
            continue
        if name == "zio":
            out["zio"] = _zio(doc)
        elif name == "txg":
            out["txg"] = _txg(doc)
        else:
            out[name] = doc.get("summary", {})
    return out
