"""The metric families the exporter speaks: one table, read by the collector and the README.

A family's name, type, labels and help live here only; the collector looks them up, so a
family cannot be exported under a name the README does not list (a test compares the
README's table with this one and with a real scrape).  Names follow Prometheus' rules:
the `klab_` prefix, base units (seconds, bytes, ratios 0-1) in the name's suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["gauge", "histogram"]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


_FAMILIES: tuple[Family, ...] = (
    # -- the exporter's own health ------------------------------------------------------
    Family(
        "klab_history_up",
        "gauge",
        (),
        "1 when the test history was read, 0 when it is missing or damaged (the log says why)",
    ),
    Family("klab_store_up", "gauge", (), "1 when the goldens' store was listed, 0 when not"),
    Family("klab_history_runs", "gauge", (), "runs in the exporter's window (--runs)"),
    # -- per distro x test: the newest result in the window -------------------------------
    Family(
        "klab_test_last_verdict",
        "gauge",
        ("distro", "test", "verdict", "run_id"),
        "1 for the verdict of the test's newest run on the distro (pass, expected, "
        "unexpected-failure, unexpected-pass, skip, flaky, absent, crashed)",
    ),
    Family(
        "klab_test_last_duration_seconds",
        "gauge",
        ("distro", "test"),
        "the test's duration in its newest run on the distro",
    ),
    Family(
        "klab_test_flake_ratio",
        "gauge",
        ("distro", "test"),
        "share of the window's runs in which the test failed at least one attempt "
        "(tests that never failed are not listed)",
    ),
    Family(
        "klab_test_slowdown_ratio",
        "gauge",
        ("distro", "test"),
        "how much slower the test was in the newest run than the median of its last clean "
        "passes (0.12 = 12 % longer); only tests past the timing thresholds",
    ),
    # -- per run -------------------------------------------------------------------------
    Family(
        "klab_run_tests",
        "gauge",
        ("run_id", "selection", "distro", "verdict"),
        "tests of the run on the distro with each verdict",
    ),
    Family(
        "klab_run_pass_ratio",
        "gauge",
        ("run_id", "distro"),
        "share of the tests that ran (not skip, not absent) whose verdict is pass",
    ),
    Family(
        "klab_run_wall_seconds",
        "gauge",
        ("run_id", "selection"),
        "wall time of the run, start to finish (unfinished runs are not listed)",
    ),
    Family(
        "klab_run_distro_duration_seconds",
        "gauge",
        ("run_id", "distro"),
        "how long the distro's tests took in the run",
    ),
    Family(
        "klab_run_start_timestamp_seconds",
        "gauge",
        ("run_id", "selection"),
        "when the run started (Unix time)",
    ),
    # -- the newest run, per distro ------------------------------------------------------
    Family(
        "klab_last_run_tests",
        "gauge",
        ("distro", "verdict", "run_id"),
        "tests of the distro's newest run with each verdict",
    ),
    Family(
        "klab_last_run_pass_ratio",
        "gauge",
        ("distro", "run_id"),
        "klab_run_pass_ratio of the distro's newest run",
    ),
    Family(
        "klab_window_pass_ratio",
        "gauge",
        ("distro",),
        "mean pass ratio of the distro's runs in the window before its newest run",
    ),
    # -- goldens -------------------------------------------------------------------------
    Family(
        "klab_golden_info",
        "gauge",
        ("lineage", "distro", "build_id", "zfs_version"),
        "1 per golden present in the store, with its build id and OpenZFS version",
    ),
    Family(
        "klab_golden_age_seconds",
        "gauge",
        ("lineage", "distro"),
        "seconds since the golden was built",
    ),
    Family(
        "klab_golden_built_timestamp_seconds",
        "gauge",
        ("lineage", "distro"),
        "when the golden was built (Unix time)",
    ),
    Family(
        "klab_golden_size_bytes",
        "gauge",
        ("lineage", "distro", "kind"),
        "the golden's size: kind=allocated (space its data takes) or virtual (disk size)",
    ),
    Family(
        "klab_golden_build_seconds",
        "gauge",
        ("lineage", "distro"),
        "wall time of the build that made the golden (from its build manifest)",
    ),
    # -- bpftrace of the newest run --------------------------------------------------------
    Family(
        "klab_bpftrace_script_up",
        "gauge",
        ("run_id", "distro", "script"),
        "1 when bpftrace/<script>.json of the newest run was read and the script "
        "attached, 0 when it did not attach or the file is damaged",
    ),
    Family(
        "klab_zio_latency_seconds",
        "histogram",
        ("run_id", "distro", "op"),
        "zio latency, creation to destruction, per zio type (read, write, ...)",
    ),
    Family(
        "klab_txg_sync_duration_seconds",
        "histogram",
        ("run_id", "distro", "pool"),
        "txg sync durations of the newest run",
    ),
    Family(
        "klab_arc_hit_ratio",
        "gauge",
        ("run_id", "distro"),
        "ARC hits / arc_read calls during the newest run (an estimate: see arc.bt)",
    ),
    Family(
        "klab_arc_state_changes",
        "gauge",
        ("run_id", "distro", "state"),
        "buffers moved into each ARC state (mru, mfu, their ghosts) during the run",
    ),
    Family(
        "klab_arc_evicted_bytes",
        "gauge",
        ("run_id", "distro", "state"),
        "bytes evicted from each ARC state during the run",
    ),
)

FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}


def family(name: str) -> Family:
    return FAMILIES[name]
