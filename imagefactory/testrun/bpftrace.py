"""bpftrace's text output from a test clone, parsed on the host into `bpftrace/<name>.json`.

The guest runs hooks/payload/zfs-bt/<name>.bt (zio, txg, arc, spl) alongside the tests and
brings back each one's stdout+stderr as `<run>/<distro>/bpftrace/<name>.txt`.  That text is
bpftrace's own print format: `@map[key]: value` lines, or `@map[key]:` followed by histogram
lines `[a, b)   count |@@@@|`, grouped into periodic reports that start with the scripts'
`time("--- %H:%M:%S ---")` line, and a final report after the `<name>.bt: done` line (END).
Tools read the JSON, never the text: the Prometheus exporter, the HTML report and the
fingerprints.

JSON schema (`"schema": "klab-bpftrace/1"`; one file per requested script)::

    {
      "schema": "klab-bpftrace/1",
      "script": "zio",                  # zio | txg | arc | spl (or another script's name)
      "attached": true,                 # false: the probes never attached (see "reason")
      "reason": null,                   # why not attached, one line: bpftrace's ERROR line,
                                        #   "no output: ...", "bpftrace was not installed"
      "ended": true,                    # the END report was printed (stopped cleanly)
      "messages": ["WARNING: ..."],     # bpftrace's WARNING/ERROR lines, capped
      "skipped_lines": 0,               # map or bucket lines that did not parse (never fatal)
      "intervals": [                    # the periodic reports, in order
        {
          "clock": "12:00:05",          # as printed (the guest's clock, UTC)
          "at": "2026-12-02T12:00:05Z", # null when the run's start date is unknown
          "elapsed_s": 0.0,             # seconds since the first report (midnight-safe)
          "maps": {MAPNAME: MAP, ...}
        }
      ],
      "totals": {MAPNAME: MAP, ...},    # what END printed (and bpftrace's exit dump)
      "summary": {...}                  # per script, see below
    }

A MAP is keyed by the map's name without `@` (`latency_us`, `sync_ms`, ...)::

    {"kind": "histogram", "unit": "seconds",
     "series": {"read": [{"lower": 0.000004, "upper": 0.000008, "count": 12}, ...]}}
    {"kind": "scalar", "unit": "count", "values": {"read": 118, "write": 40}}

Histogram buckets are half-open [lower, upper) in base units (seconds, bytes), ascending,
only those with a count (bpftrace prints the empty ones between); bpftrace's
single-value buckets `[n]` become [n, n+1) in the script's unit before scaling, `(..., 0)`
has "lower": null and an unbounded last bucket "upper": null.  The key of a map without
one is "".  Units: zio `latency_us` and txg `sync_ms`/`slowest_ms` are converted to
seconds; byte maps stay bytes; counts are "count"; txg `last_txg` is "txg"; values of a
map the parser has no unit for keep the script's number with "unit": "1".

"summary" holds derived figures, null where the trace has no data:

- zio: `{"ops": {"read": {"count": N, "p50_s": x, "p90_s": x, "p99_s": x, "max_s": x}}}`
  from the sum of every interval's `latency_us` histogram (a percentile is the upper bound
  of the bucket holding it, as bpftrace's buckets are the resolution);
- txg: `{"pools": {"tank": {"syncs": N, "p50_s": x, "p99_s": x, "max_s": x,
  "last_txg": N}}}`, and `"timeline": [{"elapsed_s": x, "at": ..., "pool": "tank",
  "syncs": N, "slowest_s": x}]` (one point per report and pool);
- arc: `{"arc_read_calls": N, "miss_completions": N, "hit_ratio": x}` (hits estimated as
  calls minus misses; arc_read also serves prefetches), `"evicted_bytes": {state: N}`;
- spl: `{"allocated_bytes": N, "freed_bytes": N, "net_bytes": N}`.

A script that was requested but left no text, or whose text holds bpftrace's attach error
and no report, is written as `{"schema": ..., "script": NAME, "attached": false,
"reason": "..."}` with the other fields empty, so a missing trace is never a quiet gap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from imagefactory.testrun.bpftrace_units import scale_of, summarise

SCHEMA = "klab-bpftrace/1"
SCRIPTS = ("zio", "txg", "arc", "spl")
"""hooks/payload/zfs-bt/<name>.bt, in the order reports show them."""

MAX_LINE = 4096
"""Longer lines are cut before matching: a map line of bpftrace is never near this."""
MAX_MESSAGES = 20
MAX_KEYS = 4096
"""Keys kept per map and report (bpftrace's own default map size): a bomb stays bounded."""

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_NUM = r"(-?[0-9]{1,20})([KMGTP]?)"
_BUCKET = re.compile(
    r"(?:\(\.\.\., " + _NUM + r"\)"  # (..., 0)
    r"|\[" + _NUM + r"\]"  # [1]
    r"|\[" + _NUM + r", (?:" + _NUM + r"|\.\.\.)\))"  # [2, 4) or [100, ...)
    r"\s+([0-9]{1,20})\s+\|[@ ]*\|\s*"
)
_MAP_NAME = re.compile(r"@([A-Za-z_][A-Za-z0-9_]{0,63})")
_CLOCK = re.compile(r"--- ([0-9]{2}):([0-9]{2}):([0-9]{2}) ---\s*")
_DONE = re.compile(r"[A-Za-z0-9_-]{1,64}\.bt: done\b.*")
_ATTACHING = re.compile(r"Attaching [0-9]+ probes?\.\.\.\s*")
_MESSAGES = ("ERROR: ", "WARNING: ", "create_probe_event: ")
"""What bpftrace's diagnostics contain; plain substrings (no regex backtracking on a long line)."""
_HARMLESS = ("RLIMIT_MEMLOCK",)
"""bpftrace's complaint on hosts that cannot raise the memlock limit; it attaches anyway."""
_INT = re.compile(r"-?[0-9]{1,20}")


def _number(digits: str, suffix: str) -> int:
    return int(digits) * _SUFFIX[suffix]


@dataclass
class _Report:
    clock: str | None = None
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _State:
    intervals: list[_Report] = field(default_factory=list)
    preamble: _Report = field(default_factory=_Report)
    totals: _Report = field(default_factory=_Report)
    current: _Report | None = None
    in_totals: bool = False
    attaching: bool = False
    ended: bool = False
    messages: list[str] = field(default_factory=list)
    attach_error: str | None = None
    skipped: int = 0
    histogram: list[dict[str, Any]] | None = None
    histogram_scale: int = 1

    def report(self) -> _Report:
        if self.in_totals:
            return self.totals
        return self.current if self.current is not None else self.preamble


def _map_entry(report: _Report, script: str, name: str, kind: str) -> dict[str, Any] | None:
    entry = report.maps.get(name)
    if entry is None:
        unit, _ = scale_of(script, name)
        entry = {"kind": kind, "unit": unit, "series" if kind == "histogram" else "values": {}}
        report.maps[name] = entry
    return entry if entry["kind"] == kind else None


def _scaled(value: int | None, divisor: int) -> int | float | None:
    if value is None or divisor == 1:
        return value
    return value / divisor


def _bucket(match: re.Match[str], divisor: int) -> dict[str, Any]:
    g = match.groups()
    lower: int | None
    upper: int | None
    if g[0] is not None:  # (..., n)
        lower, upper = None, _number(g[0], g[1])
    elif g[2] is not None:  # [n]
        lower = _number(g[2], g[3])
        upper = lower + 1
    else:  # [a, b) or [a, ...)
        lower = _number(g[4], g[5])
        upper = _number(g[6], g[7]) if g[6] is not None else None
    return {
        "lower": _scaled(lower, divisor),
        "upper": _scaled(upper, divisor),
        "count": int(g[8]),
    }


def _scalar(text: str, divisor: int) -> int | float | str | None:
    text = text.strip()
    if _INT.fullmatch(text):
        return _scaled(int(text), divisor)
    return text[:256]


def _line(state: _State, script: str, line: str) -> None:
    if state.histogram is not None:
        bucket = _BUCKET.fullmatch(line)
        if bucket is not None:
            counted = _bucket(bucket, state.histogram_scale)
            # Empty buckets carry nothing: the bounds of the others are explicit.
            if counted["count"] and len(state.histogram) < 256:
                state.histogram.append(counted)
            return
        state.histogram = None
    stripped = line.strip()
    if not stripped:
        return
    clock = _CLOCK.fullmatch(stripped)
    if clock is not None and not state.in_totals:
        state.current = _Report(clock=stripped[4:12])
        state.intervals.append(state.current)
        return
    if _DONE.fullmatch(stripped):
        state.in_totals = True
        state.ended = True
        return
    if _ATTACHING.fullmatch(stripped):
        state.attaching = True
        return
    if any(m in stripped for m in _MESSAGES) and not stripped.startswith("@"):
        if any(h in stripped for h in _HARMLESS):
            return
        if "ERROR: " in stripped and "attach" in stripped.lower() and state.attach_error is None:
            state.attach_error = stripped[:300]
        if len(state.messages) < MAX_MESSAGES:
            state.messages.append(stripped[:300])
        return
    if line.startswith("@"):
        _map_line(state, script, line)
        return
    if _BUCKET.fullmatch(line):
        state.skipped += 1  # a bucket outside any histogram
    # Anything else is the scripts' own prose (printf), which carries no data.


def _split_map_line(line: str) -> tuple[str, str, str] | None:
    """`@name[key]: value` -> (name, key, value); the key is up to the last `]:` (a string
    key may hold brackets).  Plain string search: linear on any line."""
    match = _MAP_NAME.match(line)
    if match is None:
        return None
    name, rest = match.group(1), line[match.end() :]
    if rest.startswith("["):
        close = rest.rfind("]:")
        if close < 0:
            return None
        key, rest = rest[1:close], rest[close + 1 :]
    else:
        key = ""
    if not rest.startswith(":"):
        return None
    return name, key, rest[1:]


def _map_line(state: _State, script: str, line: str) -> None:
    split = _split_map_line(line.rstrip("\n"))
    if split is None:
        state.skipped += 1
        return
    name, key, value = split
    key = key[:256]
    report = state.report()
    _, scale = scale_of(script, name)
    if not value.strip():
        entry = _map_entry(report, script, name, "histogram")
        if entry is None or (key not in entry["series"] and len(entry["series"]) >= MAX_KEYS):
            state.skipped += 1
            return
        buckets: list[dict[str, Any]] = []
        entry["series"][key] = buckets
        state.histogram = buckets
        state.histogram_scale = scale
        return
    entry = _map_entry(report, script, name, "scalar")
    if entry is None or (key not in entry["values"] and len(entry["values"]) >= MAX_KEYS):
        state.skipped += 1
        return
    entry["values"][key] = _scalar(value, scale)


def _timestamps(intervals: Iterable[_Report], started: datetime | None) -> list[dict[str, Any]]:
    """Clock times to seconds since the first report, a day added whenever the clock wraps;
    with the run's start, to UTC instants (the first report is the first such time after it).
    """
    out: list[dict[str, Any]] = []
    first: datetime | None = None
    previous: datetime | None = None
    day = (started or datetime(2000, 1, 1, tzinfo=UTC)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    for report in intervals:
        assert report.clock is not None
        hours, minutes, seconds = (int(p) for p in report.clock.split(":"))
        if hours > 23 or minutes > 59 or seconds > 60:
            continue
        at = day + timedelta(hours=hours, minutes=minutes, seconds=min(seconds, 59))
        floor = previous if previous is not None else started
        # Only a wrap past midnight moves the date: a guest clock a little behind the
        # run's start, or reports out of order, must not add a day.
        while floor is not None and at < floor - timedelta(hours=12):
            at += timedelta(days=1)
            day += timedelta(days=1)
        previous = at
        first = first or at
        out.append(
            {
                "clock": report.clock,
                "at": at.strftime("%Y-%m-%dT%H:%M:%SZ") if started is not None else None,
                "elapsed_s": (at - first).total_seconds(),
                "maps": report.maps,
            }
        )
    return out


def not_attached(script: str, reason: str) -> dict[str, Any]:
    """The record of a script that produced no trace."""
    return {
        "schema": SCHEMA,
        "script": script,
        "attached": False,
        "reason": reason,
        "ended": False,
        "messages": [],
        "skipped_lines": 0,
        "intervals": [],
        "totals": {},
        "summary": {},
    }


def parse_output(text: str, script: str, *, started: datetime | None = None) -> dict[str, Any]:
    """One script's bpftrace output as the JSON document above (never raises on bad text).

    `started`: when the run began (UTC), to date the reports' clock times.
    """
    if not text.strip():
        return not_attached(script, "no output: bpftrace printed nothing")
    state = _State()
    for raw in text.splitlines():
        _line(state, script, raw[:MAX_LINE])
    maps_seen = bool(state.intervals or state.totals.maps or state.preamble.maps)
    if state.attach_error is not None:
        return {**not_attached(script, state.attach_error), "messages": state.messages}
    if not state.attaching and not maps_seen:
        first = state.messages[0] if state.messages else "no 'Attaching' line and no report"
        return {
            **not_attached(script, f"bpftrace did not start tracing: {first}"),
            "messages": state.messages,
        }
    totals = dict(state.preamble.maps)
    totals.update(state.totals.maps)
    intervals = _timestamps(state.intervals, started)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "script": script,
        "attached": True,
        "reason": None,
        "ended": state.ended,
        "messages": state.messages,
        "skipped_lines": state.skipped,
        "intervals": intervals,
        "totals": totals,
    }
    doc["summary"] = summarise(script, intervals, totals)
    return doc
