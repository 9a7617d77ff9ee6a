"""One distro's traces from several boots combined into one `klab-bpftrace/1` document.

`klab test --clones K` runs a distro's selection in K clones, and a clone that crashes goes
on in a fresh one (clones.py): each boot writes its own `bpftrace/<name>.json`.  The report,
the exporter and the fingerprints want the distro's run as one trace, so the pieces are
combined here -- by adding what can be added, never by averaging:

- histograms are summed bucket by bucket.  bpftrace prints only the non-empty buckets of one
  grid (powers of two), so pieces differ in which buckets they hold, never in their bounds;
  buckets that overlap without being the same (another script version, a damaged file) or
  another unit make an entry in "errors" and that series is left out everywhere -- a mix of
  two grids would be a histogram of nothing;
- the pieces' reports stay what they are, each labelled with its "source" (`clone-2`,
  `clone-1/boot-2`, `.` for the distro directory itself), in piece order: their clocks and
  `elapsed_s` belong to their own boot, so they are a time series per source;
- "totals" (END) are summed per key (counts, bytes, seconds); a txg number is a position,
  not an amount: the highest is kept;
- "summary" is computed again from the combined data: percentiles from the summed
  histograms, the ARC hit ratio from the summed calls and misses (never a mean of ratios),
  counts and bytes summed, the slowest sync the slowest of all, the timeline per source.

Extra fields (the schema's readers ignore unknown fields): "sources" (per piece: source,
attached, reason, ended, reports), "complete" (every piece attached, no errors), "errors".
"attached" is true when any piece traced; "reason" then says which did not.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from imagefactory.testrun.bpftrace import MAX_MESSAGES, SCHEMA
from imagefactory.testrun.bpftrace_units import merge_buckets, quantile, summarise

Doc = dict[str, Any]
_KINDS = {"histogram": "series", "scalar": "values"}


class TraceShapeError(ValueError):
    """A piece's JSON that is not the documented shape (said in one line)."""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_map(where: str, entry: object) -> None:
    if not isinstance(entry, dict) or entry.get("kind") not in _KINDS:
        raise TraceShapeError(f"{where}: not a map with kind histogram or scalar")
    if not isinstance(entry.get("unit", ""), str):
        raise TraceShapeError(f"{where}.unit: not a string")
    field = _KINDS[entry["kind"]]
    rows = entry.get(field)
    if not isinstance(rows, dict):
        raise TraceShapeError(f"{where}.{field}: not an object")
    for key, value in rows.items():
        if entry["kind"] == "scalar":
            if not (_is_number(value) or isinstance(value, str) or value is None):
                raise TraceShapeError(f"{where}.values.{key!s:.40}: {value!r:.40} is no value")
            continue
        if not isinstance(value, list):
            raise TraceShapeError(f"{where}.series.{key!s:.40}: not a list")
        for i, b in enumerate(value):
            at = f"{where}.series.{key!s:.40}[{i}]"
            if not isinstance(b, dict):
                raise TraceShapeError(f"{at}: not an object")
            count = b.get("count")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise TraceShapeError(f"{at}.count: {count!r:.40} is not a whole number >= 0")
            for bound in ("lower", "upper"):
                if b.get(bound) is not None and not _is_number(b.get(bound)):
                    raise TraceShapeError(f"{at}.{bound}: {b.get(bound)!r:.40} is no bound")


def check_shape(doc: object, script: str) -> Doc:
    """`doc` when it has the schema's shape as far as merging reads it; TraceShapeError."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("script") != script:
        raise TraceShapeError(f"not a {SCHEMA} document of {script}")
    if not isinstance(doc.get("attached"), bool):
        raise TraceShapeError("attached: not true or false")
    intervals = doc.get("intervals", [])
    if not isinstance(intervals, list):
        raise TraceShapeError("intervals: not a list")
    for i, interval in enumerate(intervals):
        if not isinstance(interval, dict) or not isinstance(interval.get("maps"), dict):
            raise TraceShapeError(f"intervals[{i}].maps: not an object")
        if not _is_number(interval.get("elapsed_s")):
            raise TraceShapeError(f"intervals[{i}].elapsed_s: not a number")
        if not isinstance(interval.get("at"), str | None):
            raise TraceShapeError(f"intervals[{i}].at: not a time or null")
        for name, entry in interval["maps"].items():
            _check_map(f"intervals[{i}].maps.{name!s:.40}", entry)
    totals = doc.get("totals", {})
    if not isinstance(totals, dict):
        raise TraceShapeError("totals: not an object")
    for name, entry in totals.items():
        _check_map(f"totals.{name!s:.40}", entry)
    return {**doc, "intervals": intervals, "totals": totals}  # a not-attached record may omit them


def _reports(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every report's maps of a piece, END's last."""
    return [i["maps"] for i in doc.get("intervals", [])] + [doc.get("totals", {})]


def _span(bucket: tuple[Any, Any]) -> tuple[float, float]:
    """(lower, upper) of a bucket with the open ends as infinities."""
    lower, upper = bucket
    return (
        -math.inf if lower is None else float(lower),
        math.inf if upper is None else float(upper),
    )


def _bound_text(bucket: tuple[Any, Any]) -> str:
    return f"[{'…' if bucket[0] is None else f'{bucket[0]:g}'}, " + (
        f"{'…' if bucket[1] is None else f'{bucket[1]:g}'})"
    )


def _conflicts(parts: Sequence[tuple[str, Doc]]) -> tuple[set[tuple[str, str]], list[str]]:
    """The (map, key) series whose pieces disagree on bounds or unit, with why."""
    buckets: dict[tuple[str, str], dict[tuple[Any, Any], str]] = {}
    units: dict[str, dict[str, str]] = {}
    for label, doc in parts:
        for maps in _reports(doc):
            for name, entry in maps.items():
                units.setdefault(name, {}).setdefault(str(entry.get("unit", "")), label)
                if entry["kind"] != "histogram":
                    continue
                for key, rows in entry["series"].items():
                    seen = buckets.setdefault((name, key), {})
                    for b in rows:
                        seen.setdefault((b.get("lower"), b.get("upper")), label)
    bad: set[tuple[str, str]] = set()
    errors: list[str] = []
    for name, by_unit in sorted(units.items()):
        if len(by_unit) > 1:
            said = ", ".join(f"{u!r} in {src}" for u, src in sorted(by_unit.items()))
            errors.append(f"{name}: units differ ({said}); left out")
            bad |= {(name, key) for (n, key) in buckets if n == name} | {(name, "*")}
    for (name, key), seen in sorted(buckets.items()):
        if (name, key) in bad:
            continue
        ordered = sorted(seen, key=_span)
        empty = next((b for b in ordered if _span(b)[1] <= _span(b)[0]), None)
        clash = next(
            ((a, b) for a, b in itertools.pairwise(ordered) if _span(b)[0] < _span(a)[1]), None
        )
        if empty is not None:
            errors.append(
                f"{name}[{key}]: {_bound_text(empty)} in {seen[empty]} is empty; left out"
            )
            bad.add((name, key))
        elif clash is not None:
            left, right = clash
            errors.append(
                f"{name}[{key}]: bucket bounds differ, {_bound_text(left)} in "
                f"{seen[left]} against {_bound_text(right)} in {seen[right]}; left out"
            )
            bad.add((name, key))
    return bad, errors


def _without(maps: Mapping[str, Any], bad: set[tuple[str, str]]) -> dict[str, Any]:
    """`maps` without the series that cannot be combined."""
    out: dict[str, Any] = {}
    for name, entry in maps.items():
        if (name, "*") in bad:
            continue
        field = _KINDS[entry["kind"]]
        kept = {k: v for k, v in entry[field].items() if (name, k) not in bad}
        out[name] = {**entry, field: kept}
    return out


def _sum_totals(docs: Sequence[Doc]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in docs:
        for name, entry in doc["totals"].items():
            merged = out.setdefault(name, {**entry, _KINDS[entry["kind"]]: {}})
            if merged["kind"] != entry["kind"]:
                continue
            if entry["kind"] == "histogram":
                for key, rows in entry["series"].items():
                    merged["series"][key] = merge_buckets([merged["series"].get(key, []), rows])
                continue
            values = merged["values"]
            for key, value in entry["values"].items():
                before = values.get(key)
                if not (_is_number(value) and (before is None or _is_number(before))):
                    values.setdefault(key, value)
                elif before is None:
                    values[key] = value
                else:
                    values[key] = max(before, value) if entry["unit"] == "txg" else before + value
    return out


def _run_histograms(doc: Doc, name: str) -> dict[str, list[dict[str, Any]]]:
    """A piece's histogram of map `name` per key over its reports (END's when none has it)."""
    rows: dict[str, list[Any]] = {}
    reports = [i["maps"] for i in doc["intervals"]]
    if not any(name in maps for maps in reports):
        reports = [doc["totals"]]
    for maps in reports:
        entry = maps.get(name)
        if entry is not None and entry["kind"] == "histogram":
            for key, buckets in entry["series"].items():
                rows.setdefault(key, []).append(buckets)
    return {key: merge_buckets(parts) for key, parts in rows.items()}


def _merged_histograms(docs: Sequence[Doc], name: str) -> dict[str, list[dict[str, Any]]]:
    per_key: dict[str, list[list[dict[str, Any]]]] = {}
    for doc in docs:
        for key, buckets in _run_histograms(doc, name).items():
            per_key.setdefault(key, []).append(buckets)
    return {key: merge_buckets(parts) for key, parts in sorted(per_key.items())}


def _add(a: Any, b: Any) -> Any:
    if not _is_number(b):
        return a
    return b if not _is_number(a) else a + b


def _add_tables(tables: Sequence[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for table in tables:
        for key, value in (table or {}).items():
            out[key] = _add(out.get(key), value)
    return {k: v for k, v in out.items() if v is not None}


def _zio(docs: Sequence[Doc]) -> dict[str, Any]:
    ops = {}
    for op, buckets in _merged_histograms(docs, "latency_us").items():
        ops[op] = {
            "count": sum(int(b["count"]) for b in buckets),
            "p50_s": quantile(buckets, 0.5),
            "p90_s": quantile(buckets, 0.9),
            "p99_s": quantile(buckets, 0.99),
            "max_s": quantile(buckets, 1.0),
        }
    return {"ops": ops}


def _txg(docs: Sequence[Doc], labels: Sequence[str]) -> dict[str, Any]:
    hists = _merged_histograms(docs, "sync_ms")
    pools: dict[str, dict[str, Any]] = {}
    timeline = []
    for label, doc in zip(labels, docs, strict=True):
        for pool, figures in doc["summary"].get("pools", {}).items():
            merged = pools.setdefault(pool, {"syncs": 0, "max_s": None, "last_txg": None})
            merged["syncs"] = _add(merged["syncs"], figures.get("syncs"))
            for field in ("max_s", "last_txg"):
                if _is_number(figures.get(field)):
                    old = merged[field]
                    merged[field] = figures[field] if old is None else max(old, figures[field])
        timeline += [{**point, "source": label} for point in doc["summary"].get("timeline", [])]
    for pool in hists.keys() - pools.keys():
        pools[pool] = {"syncs": 0, "max_s": None, "last_txg": None}
    out = {}
    for pool in sorted(pools):
        buckets = hists.get(pool, [])
        figures = pools[pool]
        out[pool] = {
            "syncs": figures["syncs"],
            "p50_s": quantile(buckets, 0.5),
            "p99_s": quantile(buckets, 0.99),
            "max_s": figures["max_s"] if figures["max_s"] is not None else quantile(buckets, 1.0),
            "last_txg": figures["last_txg"],
        }
    return {"pools": out, "timeline": timeline}


def _arc(docs: Sequence[Doc]) -> dict[str, Any]:
    summaries = [doc["summary"] for doc in docs]
    counted = [s for s in summaries if _is_number(s.get("arc_read_calls"))]
    calls = sum(s["arc_read_calls"] for s in counted) if counted else None
    misses = sum(s.get("miss_completions") or 0 for s in counted) if counted else None
    ratio = None
    if calls and misses is not None:
        ratio = min(1.0, max(0.0, (calls - misses) / calls))
    return {
        "arc_read_calls": calls,
        "miss_completions": misses,
        "hit_ratio": ratio,
        "evicted_bytes": _add_tables([s.get("evicted_bytes") for s in summaries]),
        "moved_to": _add_tables([s.get("moved_to") for s in summaries]),
    }


def _spl(docs: Sequence[Doc]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in ("allocated_bytes", "freed_bytes", "net_bytes"):
        total = None
        for doc in docs:
            total = _add(total, doc["summary"].get(field))
        out[field] = total
    return out


def _summary(script: str, docs: Sequence[Doc], labels: Sequence[str]) -> dict[str, Any]:
    if script == "zio":
        return _zio(docs)
    if script == "txg":
        return _txg(docs, labels)
    if script == "arc":
        return _arc(docs)
    if script == "spl":
        return _spl(docs)
    return {}


def merge_traces(script: str, parts: Sequence[tuple[str, object]]) -> Doc:
    """The pieces' documents (source label, parsed JSON) as one document (module doc).

    A piece given as a string (why its file could not be read) or that is not the schema's
    shape counts as a piece that did not trace and is an entry in "errors".
    """
    sources: list[dict[str, Any]] = []
    usable: list[tuple[str, Doc]] = []
    errors: list[str] = []
    messages: list[str] = []
    skipped = 0
    for label, raw in parts:
        try:
            if isinstance(raw, str):
                raise TraceShapeError(raw)
            doc = check_shape(raw, script)
        except TraceShapeError as exc:
            reason = f"unreadable {script}.json: {exc}"
            errors.append(f"{label}: {reason}")
            sources.append({"source": label, "attached": False, "reason": reason})
            continue
        attached = doc["attached"]
        sources.append(
            {
                "source": label,
                "attached": attached,
                "reason": doc.get("reason") if not attached else None,
                "ended": bool(doc.get("ended")) if attached else False,
                "reports": len(doc["intervals"]),
            }
        )
        said = [m for m in doc.get("messages") or [] if isinstance(m, str)]
        messages += [f"{label}: {m}"[:300] if len(parts) > 1 else m for m in said]
        if isinstance(doc.get("skipped_lines"), int):
            skipped += doc["skipped_lines"]
        if attached:
            usable.append((label, doc))
    bad, bound_errors = _conflicts(usable)
    errors += bound_errors
    docs: list[Doc] = []
    for label, doc in usable:
        intervals = [
            {**i, "source": label, "maps": _without(i["maps"], bad)} for i in doc["intervals"]
        ]
        totals = _without(doc["totals"], bad)
        docs.append(
            {
                "intervals": intervals,
                "totals": totals,
                "summary": summarise(script, intervals, totals),
            }
        )
    missing = [s for s in sources if not s["attached"]]
    if len(sources) == 1:  # an unsplit run: the piece's own words
        reasons = [str(s["reason"]) for s in missing] + bound_errors
    else:
        reasons = [f"{s['source']}: {s['reason']}" for s in missing] + bound_errors
    return {
        "schema": SCHEMA,
        "script": script,
        "attached": bool(usable),
        "reason": "; ".join(reasons)[:1000] or None,
        "ended": bool(usable) and all(s.get("ended") for s in sources if s["attached"]),
        "messages": messages[:MAX_MESSAGES],
        "skipped_lines": skipped,
        "intervals": [i for doc in docs for i in doc["intervals"]],
        "totals": _sum_totals(docs),
        "summary": _summary(script, docs, [label for label, _ in usable]) if docs else {},
        "sources": sources,
        "complete": bool(sources) and not missing and not errors,
        "errors": errors,
    }
