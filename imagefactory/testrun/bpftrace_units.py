"""What the zfs-bt scripts' maps measure, and the figures derived from a parsed trace.

bpftrace prints numbers in whatever unit a script chose (zio.bt microseconds, txg.bt
milliseconds); the JSON holds base units (seconds, bytes) so that the exporter, the report
and the fingerprints never need to know which script used which.  A map this table does not
name keeps its numbers as printed, with unit "1".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_UNITS: dict[tuple[str, str], tuple[str, int]] = {
    ("zio", "latency_us"): ("seconds", 1_000_000),
    ("zio", "done"): ("count", 1),
    ("zio", "inflight"): ("count", 1),
    ("txg", "sync_ms"): ("seconds", 1000),
    ("txg", "slowest_ms"): ("seconds", 1000),
    ("txg", "syncs"): ("count", 1),
    ("txg", "total_syncs"): ("count", 1),
    ("txg", "last_txg"): ("txg", 1),
    ("arc", "ops"): ("count", 1),
    ("arc", "total"): ("count", 1),
    ("arc", "moved_to"): ("count", 1),
    ("arc", "evicted_bytes"): ("bytes", 1),
    ("arc", "shrunk_bytes"): ("bytes", 1),
    ("spl", "alloc_size"): ("bytes", 1),
    ("spl", "bytes"): ("bytes", 1),
    ("spl", "net_bytes"): ("bytes", 1),
    ("spl", "by_caller"): ("bytes", 1),
    ("spl", "cache"): ("count", 1),
}


def scale_of(script: str, name: str) -> tuple[str, int]:
    """(unit, divisor): the printed number divided by `divisor` is in `unit`."""
    return _UNITS.get((script, name), ("1", 1))


Buckets = Sequence[Mapping[str, Any]]


def merge_buckets(histograms: Sequence[Buckets]) -> list[dict[str, Any]]:
    """Histograms over the same buckets (bpftrace's power-of-two ones) added together."""
    counts: dict[tuple[Any, Any], int] = {}
    for buckets in histograms:
        for b in buckets:
            key = (b.get("lower"), b.get("upper"))
            count = b.get("count")
            if isinstance(count, int):
                counts[key] = counts.get(key, 0) + count

    def order(key: tuple[Any, Any]) -> float:
        lower, upper = key
        if isinstance(lower, (int, float)):
            return float(lower)
        return float(upper) - 1e300 if isinstance(upper, (int, float)) else -1e308

    return [{"lower": k[0], "upper": k[1], "count": counts[k]} for k in sorted(counts, key=order)]


def quantile(buckets: Buckets, q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile: the histogram's resolution."""
    total = sum(int(b["count"]) for b in buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for b in buckets:
        seen += int(b["count"])
        if seen >= rank and b["count"]:
            bound = b["upper"] if b["upper"] is not None else b["lower"]
            return float(bound) if bound is not None else None
    return None


def _latency(buckets: Buckets) -> dict[str, Any]:
    return {
        "count": sum(int(b["count"]) for b in buckets),
        "p50_s": quantile(buckets, 0.5),
        "p90_s": quantile(buckets, 0.9),
        "p99_s": quantile(buckets, 0.99),
        "max_s": quantile(buckets, 1.0),
    }


def _series(reports: Sequence[Mapping[str, Any]], name: str, kind: str) -> list[dict[str, Any]]:
    """Each report's `series` (histogram) or `values` (scalar) of map `name`."""
    out = []
    for maps in reports:
        entry = maps.get(name)
        if isinstance(entry, dict) and entry.get("kind") == kind:
            out.append(entry["series" if kind == "histogram" else "values"])
    return out


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in values.items() if isinstance(v, (int, float))}


def _sum_values(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for row in rows:
        for key, value in _numbers(row).items():
            total[key] = total.get(key, 0) + value
    return total


def _histograms_by_key(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    keys: dict[str, list[Buckets]] = {}
    for row in rows:
        for key, buckets in row.items():
            keys.setdefault(key, []).append(buckets)
    return {key: merge_buckets(parts) for key, parts in keys.items()}


def _zio(maps: list[Mapping[str, Any]], totals: Mapping[str, Any]) -> dict[str, Any]:
    rows = _series(maps, "latency_us", "histogram") or _series([totals], "latency_us", "histogram")
    return {"ops": {op: _latency(b) for op, b in sorted(_histograms_by_key(rows).items())}}


def _txg(intervals: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]) -> dict[str, Any]:
    maps = [i["maps"] for i in intervals]
    hists = _histograms_by_key(_series(maps, "sync_ms", "histogram"))
    syncs = _sum_values(_series(maps, "syncs", "scalar"))
    total_syncs = _sum_values(_series([totals], "total_syncs", "scalar"))
    slowest: dict[str, float] = {}
    last_txg: dict[str, float] = {}
    timeline = []
    for interval in intervals:
        counts = _numbers(next(iter(_series([interval["maps"]], "syncs", "scalar")), {}))
        worst = _numbers(next(iter(_series([interval["maps"]], "slowest_ms", "scalar")), {}))
        for pool, value in worst.items():
            slowest[pool] = max(slowest.get(pool, value), value)
        last_txg.update(_numbers(next(iter(_series([interval["maps"]], "last_txg", "scalar")), {})))
        for pool in sorted(set(counts) | set(worst)):
            timeline.append(
                {
                    "elapsed_s": interval["elapsed_s"],
                    "at": interval["at"],
                    "pool": pool,
                    "syncs": counts.get(pool, 0),
                    "slowest_s": worst.get(pool),
                }
            )
    pools = {}
    for pool in sorted(set(hists) | set(syncs) | set(total_syncs)):
        buckets = hists.get(pool, [])
        pools[pool] = {
            "syncs": int(total_syncs.get(pool, syncs.get(pool, 0))),
            "p50_s": quantile(buckets, 0.5),
            "p99_s": quantile(buckets, 0.99),
            "max_s": slowest.get(pool, quantile(buckets, 1.0)),
            "last_txg": last_txg.get(pool),
        }
    return {"pools": pools, "timeline": timeline}


def _arc(maps: list[Mapping[str, Any]], totals: Mapping[str, Any]) -> dict[str, Any]:
    ops = _sum_values(_series([totals], "total", "scalar")) or _sum_values(
        _series(maps, "ops", "scalar")
    )
    calls = ops.get("arc_read calls")
    misses = ops.get("miss completions", 0)
    ratio = None
    if calls:
        ratio = min(1.0, max(0.0, (calls - misses) / calls))
    return {
        "arc_read_calls": calls,
        "miss_completions": misses if calls is not None else ops.get("miss completions"),
        "hit_ratio": ratio,
        "evicted_bytes": _sum_values(_series(maps, "evicted_bytes", "scalar")),
        "moved_to": _sum_values(_series(maps, "moved_to", "scalar")),
    }


def _spl(maps: list[Mapping[str, Any]], totals: Mapping[str, Any]) -> dict[str, Any]:
    moved = _sum_values(_series(maps, "bytes", "scalar"))
    net_rows = _series([totals], "net_bytes", "scalar") or _series(maps, "net_bytes", "scalar")[-1:]
    net = _sum_values(net_rows).get("allocated - freed")
    return {
        "allocated_bytes": moved.get("allocated"),
        "freed_bytes": moved.get("freed"),
        "net_bytes": net,
    }


def summarise(
    script: str, intervals: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]
) -> dict[str, Any]:
    """The per-script figures of the schema's "summary" (empty for another script)."""
    maps = [i["maps"] for i in intervals]
    if script == "zio":
        return _zio(maps, totals)
    if script == "txg":
        return _txg(intervals, totals)
    if script == "arc":
        return _arc(maps, totals)
    if script == "spl":
        return _spl(maps, totals)
    return {}
