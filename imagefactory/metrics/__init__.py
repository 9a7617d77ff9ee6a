"""Prometheus metrics of runs and goldens: `klab metrics serve` and the push after a run.

Every scrape reads the current data (a custom collector, nothing cached between scrapes
except which damaged files were already logged), so a run recorded a second ago shows at the
next scrape.  The parts, one job each:

- `catalogue`: every metric family's name, type, labels and help (the README table's source);
- `history_snapshot`: what the SQLite history holds, read-only, in a few grouped queries;
- `bpftrace_files`: the `bpftrace/<name>.json` files of a run directory, validated;
- `goldens`: the goldens of the store (age, OpenZFS version, build id, size, build time);
- `collector`: the families built from those, and the error metrics when a source fails;
- `server`: the HTTP endpoint and `<state dir>/metrics.addr`;  `push`: the pushgateway.
"""
