"""The newest run's traces as the exporter reads them: `<artifacts>/bpftrace/<name>.json`.

The files are written on the host when a distro is judged, in the `klab-bpftrace/1` schema
(`imagefactory.testrun.bpftrace` documents it in full), one per boot: a distro run in
several clones (`clone-<k>/`), boots after a crash (`boot-<n>/`) or merged shards has one
file in each, and `read_trace` takes them all through the one reader of a distro's traces
(`testrun.bpftrace_files.distro_traces`), which sums them.  A piece that is damaged or
whose buckets do not match the others' is a `BpftraceFileError` (the exporter shows no
half-read figure); a script that did not attach in every piece is `attached` false (its
histograms still hold what the others traced).  The exporter reads only:

- every report's (`intervals[].maps`) histogram `latency_us` of zio.json, per operation, and
  `sync_ms` of txg.json, per pool: bucket lists `[{"lower", "upper", "count"}]` already in
  seconds, half-open [lower, upper), `upper: null` the open last bucket.  They are added
  up over the run with the parser's own `merge_buckets` (one definition of "the run's
  histogram": the same sum the file's `summary` quantiles come from);
- arc.json's `summary`: `arc_read_calls`, `miss_completions`, `hit_ratio`, `evicted_bytes`
  and `moved_to` (per ARC state);
- `attached` (false: the script did not trace; `reason` says why).

The files come from a guest's output and may be damaged: anything off the shape raises
`BpftraceFileError`, one line naming the file and the field, which the collector turns into
`klab_bpftrace_script_up 0`; an absent file is None (logged by the collector, no series).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from imagefactory.testrun.bpftrace import SCHEMA
from imagefactory.testrun.bpftrace_files import distro_traces
from imagefactory.testrun.bpftrace_units import merge_buckets

SCRIPTS = ("zio", "txg", "arc")
_NAME = 64


class BpftraceFileError(ValueError):
    """A bpftrace JSON file that does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative buckets in seconds, as Prometheus wants them: (upper bound, count <= it).

    `sum_s` is estimated from the bucket midpoints: bpftrace's hist() keeps no sum."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_s: float


@dataclass(frozen=True, slots=True)
class ZioTrace:
    attached: bool
    histograms: dict[str, Histogram] = field(default_factory=dict)
    """Operation (read, write, free, vdev-child...) -> the run's latency histogram."""


@dataclass(frozen=True, slots=True)
class TxgTrace:
    attached: bool
    histograms: dict[str, Histogram] = field(default_factory=dict)
    """Pool -> the run's txg sync durations."""


@dataclass(frozen=True, slots=True)
class ArcTrace:
    attached: bool
    hit_ratio: float | None = None
    """None when nothing was read: no ratio, not a perfect one."""
    moved_to: dict[str, int] = field(default_factory=dict)
    evicted_bytes: dict[str, int] = field(default_factory=dict)


Trace = ZioTrace | TxgTrace | ArcTrace


def _fail(path: Path, where: str, what: str) -> BpftraceFileError:
    return BpftraceFileError(f"{path}: {where}: {what}")


def _number(path: Path, where: str, value: object, *, whole: bool = False) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if (
        number is None
        or (whole and not isinstance(number, int))
        or not math.isfinite(number)
        or number < 0
    ):
        kind = "a whole number >= 0" if whole else "a finite number >= 0"
        raise _fail(path, where, f"{value!r:.40} is not {kind}")
    return float(number)


def _bound(path: Path, where: str, value: object) -> float | None:
    """A bucket bound: a finite number (the lowest bucket's upper may be 0 or below) or null."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise _fail(path, where, f"{value!r:.40} is not a finite number or null")
    return float(value)


def _name(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > _NAME or not value.isprintable():
        raise _fail(path, where, f"{value!r:.40} is not a name (0-{_NAME} printable characters)")
    return value


def _mapping(path: Path, where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, where, "is not an object")
    return value


def _list(path: Path, where: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, where, "is not a list")
    return value


def _buckets(path: Path, where: str, rows: object) -> list[dict[str, Any]]:
    clean = []
    for i, row in enumerate(_list(path, where, rows)):
        at = f"{where}[{i}]"
        bucket = _mapping(path, at, row)
        lower = _bound(path, f"{at}.lower", bucket.get("lower"))
        upper = _bound(path, f"{at}.upper", bucket.get("upper"))
        if lower is not None and upper is not None and upper <= lower:
            raise _fail(path, at, f"[{lower:g}, {upper:g}) is empty")
        count = int(_number(path, f"{at}.count", bucket.get("count"), whole=True))
        clean.append({"lower": lower, "upper": upper, "count": count})
    return clean


def _histogram(path: Path, where: str, merged: list[dict[str, Any]]) -> Histogram:
    """Cumulative buckets; the open bucket only adds to +Inf (the count)."""
    cumulative: list[tuple[float, int]] = []
    total, estimate, previous = 0, 0.0, -math.inf
    for b in merged:
        lower, upper, count = b["lower"], b["upper"], b["count"]
        total += count
        if upper is None:
            estimate += count * max(lower or 0.0, 0.0)
            continue
        if upper <= previous:
            raise _fail(path, where, f"buckets overlap at {upper:g}")
        previous = upper
        estimate += count * max(((lower if lower is not None else upper) + upper) / 2, 0.0)
        cumulative.append((upper, total))
    if any(b["upper"] is None for b in merged[:-1]):
        raise _fail(path, where, "only the last bucket may be open (upper null)")
    return Histogram(tuple(cumulative), total, estimate)


def _run_histograms(path: Path, data: dict[str, Any], name: str) -> dict[str, Histogram]:
    """Map `name`'s histograms over every report, added up per key."""
    parts: dict[str, list[list[dict[str, Any]]]] = {}
    for i, interval in enumerate(_list(path, "intervals", data.get("intervals", []))):
        maps = _mapping(
            path,
            f"intervals[{i}].maps",
            _mapping(path, f"intervals[{i}]", interval).get("maps", {}),
        )
        entry = maps.get(name)
        if entry is None:
            continue
        where = f"intervals[{i}].maps.{name}"
        entry = _mapping(path, where, entry)
        if entry.get("kind") != "histogram":
            raise _fail(path, f"{where}.kind", f"{entry.get('kind')!r:.40} is not 'histogram'")
        series = _mapping(path, f"{where}.series", entry.get("series"))
        for key, rows in series.items():
            key = _name(path, f"{where}.series", key)
            parts.setdefault(key, []).append(_buckets(path, f"{where}.series.{key}", rows))
    return {
        key: _histogram(path, f"{name}.{key}", merge_buckets(lists))
        for key, lists in sorted(parts.items())
    }


def _counts(path: Path, where: str, value: object) -> dict[str, int]:
    table = _mapping(path, where, value if value is not None else {})
    return {_name(path, where, k): int(_number(path, f"{where}.{k}", v)) for k, v in table.items()}


def _arc(path: Path, data: dict[str, Any]) -> ArcTrace:
    summary = _mapping(path, "summary", data.get("summary"))
    ratio_raw = summary.get("hit_ratio")
    ratio = None if ratio_raw is None else _number(path, "summary.hit_ratio", ratio_raw)
    if ratio is not None and ratio > 1:
        raise _fail(path, "summary.hit_ratio", f"{ratio:g} is above 1")
    return ArcTrace(
        True,
        ratio,
        _counts(path, "summary.moved_to", summary.get("moved_to")),
        _counts(path, "summary.evicted_bytes", summary.get("evicted_bytes")),
    )


def parse_trace(path: Path, script: str, text: str) -> Trace:
    """The trace in `text` (the content of `path`), or BpftraceFileError."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, "JSON", str(exc)[:120]) from None
    return _document(path, script, data)


def _document(path: Path, script: str, data: object) -> Trace:
    data = _mapping(path, "top level", data)
    if data.get("schema") != SCHEMA:
        raise _fail(path, "schema", f"{data.get('schema')!r:.40} is not {SCHEMA!r}")
    if data.get("script") != script:
        raise _fail(path, "script", f"{data.get('script')!r:.40} where {script!r} was expected")
    attached = data.get("attached")
    if not isinstance(attached, bool):
        raise _fail(path, "attached", f"{attached!r:.40} is not true or false")
    if script == "zio":
        return ZioTrace(attached, _run_histograms(path, data, "latency_us") if attached else {})
    if script == "txg":
        return TxgTrace(attached, _run_histograms(path, data, "sync_ms") if attached else {})
    return _arc(path, data) if attached else ArcTrace(False)


def read_trace(artifacts: Path, script: str) -> Trace | None:
    """The distro's trace from `<artifacts>` and every clone and boot below it (module doc);
    None when no piece has the file; BpftraceFileError when one is bad."""
    doc = distro_traces(artifacts, script)
    if doc is None:
        return None
    labels = [str(s.get("source")) for s in doc.get("sources", [])]
    where = artifacts if labels == ["."] else artifacts / f"{{{','.join(labels)}}}"
    path = where / "bpftrace" / f"{script}.json"
    if doc.get("errors"):
        errors = doc["errors"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise _fail(path, "pieces", f"{errors[0]}"[:300] + more)
    trace = _document(path, script, doc)
    return replace(trace, attached=bool(doc.get("complete")))
