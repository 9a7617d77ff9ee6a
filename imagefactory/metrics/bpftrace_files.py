"""The parsed bpftrace output of a run: `<artifacts>/bpftrace/<name>.json`, validated.

The host-side parsers (the testrun's bpftrace parsing) turn each script's raw output into
JSON; this module reads that JSON and nothing else.  The shapes it accepts (README, "bpftrace
JSON"); every duration carries its unit (`ns`, `us`, `ms` or `s`) and is converted to seconds:

    zio.json  {"script": "zio", "attached": true, "unit": "us",
               "histograms": {"read": [{"low": 0, "high": 1, "count": 4}, ...,
                                       {"low": 1048576, "high": null, "count": 1}]},
               "sums": {"read": 1234.5}}                 (optional: exact sums, in unit)
    txg.json  {"script": "txg", "attached": true, "unit": "ms",
               "syncs": [{"time": 1764710400.25, "pool": "testpool", "duration": 12.5}]}
    arc.json  {"script": "arc", "attached": true,
               "totals": {"reads": 1200, "misses": 80,
                          "moved_to": {"mru": 300, "mfu": 120},
                          "evicted_bytes": {"mru": 1048576, "mfu": 0}}}

A histogram bucket counts values in [low, high); `high: null` is the open last bucket.
`attached: false` records a script that did not attach (its other fields are ignored).
An absent file is logged and skipped; a malformed one raises `BpftraceFileError` (one line
naming the file and the field), which the collector turns into `klab_bpftrace_script_up 0`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 32 << 20
"""A parsed trace is small; a bigger file is not one (and is not read into memory)."""

UNITS: dict[str, float] = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
SCRIPTS = ("zio", "txg", "arc")
_NAME = 64


class BpftraceFileError(ValueError):
    """A bpftrace JSON file that does not have the documented shape."""


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative buckets in seconds, as Prometheus wants them: (upper bound, count <= it)."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    sum_s: float


@dataclass(frozen=True, slots=True)
class ZioTrace:
    attached: bool
    histograms: dict[str, Histogram] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TxgSync:
    time: float
    pool: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class TxgTrace:
    attached: bool
    syncs: tuple[TxgSync, ...] = ()


@dataclass(frozen=True, slots=True)
class ArcTrace:
    attached: bool
    reads: int = 0
    misses: int = 0
    moved_to: dict[str, int] = field(default_factory=dict)
    evicted_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def hit_ratio(self) -> float | None:
        """(reads - misses) / reads; None when nothing was read (no ratio, not a perfect one)."""
        if self.reads <= 0:
            return None
        return max(0.0, min(1.0, (self.reads - self.misses) / self.reads))


Trace = ZioTrace | TxgTrace | ArcTrace


def _fail(path: Path, where: str, what: str) -> BpftraceFileError:
    return BpftraceFileError(f"{path}: {where}: {what}")


def _number(path: Path, where: str, value: object, *, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not math.isfinite(float(value)) or value < 0:  # type: ignore[arg-type, operator]
        kind = "a whole number >= 0" if integer else "a finite number >= 0"
        raise _fail(path, where, f"{value!r:.40} is not {kind}")
    return float(value)  # type: ignore[arg-type]


def _name(path: Path, where: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > _NAME or not value.isprintable():
        raise _fail(path, where, f"{value!r:.40} is not a name (1-{_NAME} printable characters)")
    return value


def _mapping(path: Path, where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, where, "is not an object")
    return value


def _unit(path: Path, data: dict[str, Any]) -> float:
    unit = data.get("unit")
    if not isinstance(unit, str) or unit not in UNITS:
        raise _fail(path, "unit", f"{unit!r:.40} is not one of {', '.join(UNITS)}")
    return UNITS[unit]


def _histogram(path: Path, op: str, rows: object, scale: float, exact: object) -> Histogram:
    if not isinstance(rows, list):
        raise _fail(path, f"histograms.{op}", "is not a list of buckets")
    cumulative: list[tuple[float, int]] = []
    total, estimate, previous = 0, 0.0, -1.0
    for i, row in enumerate(rows):
        where = f"histograms.{op}[{i}]"
        bucket = _mapping(path, where, row)
        low = _number(path, f"{where}.low", bucket.get("low"))
        count = int(_number(path, f"{where}.count", bucket.get("count"), integer=True))
        high_raw = bucket.get("high")
        if high_raw is None:
            if i != len(rows) - 1:
                raise _fail(path, f"{where}.high", "only the last bucket may be open (null)")
            estimate += count * low * scale
            total += count
            continue
        high = _number(path, f"{where}.high", high_raw)
        if high <= low or low < previous:
            raise _fail(path, where, f"bounds [{low:g}, {high:g}) are not ascending")
        previous = high
        total += count
        estimate += count * (low + high) / 2 * scale
        cumulative.append((high * scale, total))
    sum_s = estimate if exact is None else _number(path, f"sums.{op}", exact) * scale
    return Histogram(tuple(cumulative), total, sum_s)


def _zio(path: Path, data: dict[str, Any]) -> ZioTrace:
    scale = _unit(path, data)
    histograms = _mapping(path, "histograms", data.get("histograms"))
    sums = _mapping(path, "sums", data.get("sums", {}))
    parsed = {
        _name(path, "histograms", op): _histogram(path, op, rows, scale, sums.get(op))
        for op, rows in histograms.items()
    }
    return ZioTrace(True, parsed)


def _txg(path: Path, data: dict[str, Any]) -> TxgTrace:
    scale = _unit(path, data)
    rows = data.get("syncs")
    if not isinstance(rows, list):
        raise _fail(path, "syncs", "is not a list")
    syncs = []
    for i, row in enumerate(rows):
        where = f"syncs[{i}]"
        sync = _mapping(path, where, row)
        syncs.append(
            TxgSync(
                time=_number(path, f"{where}.time", sync.get("time")),
                pool=_name(path, f"{where}.pool", sync.get("pool")),
                duration_s=_number(path, f"{where}.duration", sync.get("duration")) * scale,
            )
        )
    return TxgTrace(True, tuple(syncs))


def _counts(path: Path, where: str, value: object) -> dict[str, int]:
    table = _mapping(path, where, value if value is not None else {})
    return {
        _name(path, where, k): int(_number(path, f"{where}.{k}", v, integer=True))
        for k, v in table.items()
    }


def _arc(path: Path, data: dict[str, Any]) -> ArcTrace:
    totals = _mapping(path, "totals", data.get("totals"))
    reads = int(_number(path, "totals.reads", totals.get("reads"), integer=True))
    misses = int(_number(path, "totals.misses", totals.get("misses"), integer=True))
    if misses > reads:
        raise _fail(path, "totals", f"{misses} misses exceed {reads} reads")
    return ArcTrace(
        True,
        reads,
        misses,
        _counts(path, "totals.moved_to", totals.get("moved_to")),
        _counts(path, "totals.evicted_bytes", totals.get("evicted_bytes")),
    )


_READERS = {"zio": _zio, "txg": _txg, "arc": _arc}
_EMPTY: dict[str, Trace] = {
    "zio": ZioTrace(False),
    "txg": TxgTrace(False),
    "arc": ArcTrace(False),
}


def parse_trace(path: Path, script: str, text: str) -> Trace:
    """The trace in `text` (the content of `path`), or BpftraceFileError."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, "JSON", str(exc)[:120]) from None
    data = _mapping(path, "top level", data)
    if data.get("script", script) != script:
        raise _fail(path, "script", f"{data.get('script')!r:.40} where {script!r} was expected")
    attached = data.get("attached")
    if not isinstance(attached, bool):
        raise _fail(path, "attached", f"{attached!r:.40} is not true or false")
    if not attached:
        return _EMPTY[script]
    return _READERS[script](path, data)


def read_trace(artifacts: Path, script: str) -> Trace | None:
    """`<artifacts>/bpftrace/<script>.json`, None when absent; BpftraceFileError when bad."""
    path = artifacts / "bpftrace" / f"{script}.json"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _fail(path, "file", exc.strerror or str(exc)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(path, "file", f"larger than {MAX_FILE_BYTES >> 20} MiB")
    return parse_trace(path, script, raw.decode("utf-8", errors="replace"))
