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
      "skipped_lines": 0,               # lines that matched nothing (never fatal)
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

Histogram buckets are half-open [lower, upper) in base units (seconds, bytes); bpftrace's
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
