"""The custom collector: every scrape reads the history, the store and the newest run's traces.

A source that fails never fails the scrape: the history missing or damaged gives
`klab_history_up 0`, the store unreachable `klab_store_up 0`, a damaged trace file
`klab_bpftrace_script_up 0`; each is logged once (a scrape every second must not repeat the
same warning every second) and logged again when it recovers.  Every family of the
catalogue is emitted at every scrape, empty when it has no sample, so a reader sees the
whole vocabulary whatever the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from imagefactory.errors import ImageFactoryError
from imagefactory.metrics.bpftrace_files import (
    SCRIPTS,
    ArcTrace,
    BpftraceFileError,
    Histogram,
    TxgTrace,
    ZioTrace,
    read_trace,
)
from imagefactory.metrics.catalogue import FAMILIES, family
from imagefactory.metrics.goldens import GoldenRow, golden_rows
from imagefactory.metrics.history_snapshot import HistorySnapshot, read_snapshot
from imagefactory.store.base import Store
from imagefactory.testrun.verdict import Verdict

log = structlog.get_logger(__name__)

DEFAULT_WINDOW = 100
VERDICTS = tuple(v.value for v in Verdict)


class _Families:
    """The scrape's families, created from the catalogue on first use."""

    def __init__(self) -> None:
        self._made: dict[str, Metric] = {}

    def __call__(self, name: str) -> Metric:
        if name not in self._made:
            spec = family(name)
            kind = HistogramMetricFamily if spec.kind == "histogram" else GaugeMetricFamily
            self._made[name] = kind(name, spec.help, labels=list(spec.labels))
        return self._made[name]

    def gauge(self, name: str, labels: list[str], value: float) -> None:
        metric = self(name)
        assert isinstance(metric, GaugeMetricFamily)
        metric.add_metric(labels, value)

    def histogram(self, name: str, labels: list[str], hist: Histogram) -> None:
        metric = self(name)
        assert isinstance(metric, HistogramMetricFamily)
        buckets = [(_le(bound), float(count)) for bound, count in hist.buckets]
        buckets.append(("+Inf", float(hist.count)))
        metric.add_metric(labels, buckets, hist.sum_s)

    def all(self) -> Iterator[Metric]:
        for name in FAMILIES:
            yield self(name)


def _le(bound: float) -> str:
    return f"{bound:.9g}"


class _Once:
    """Log each distinct problem once, and its recovery once."""

    def __init__(self) -> None:
        self.active: dict[str, str] = {}

    def problem(self, source: str, message: str) -> None:
        if self.active.get(source) != message:
            self.active[source] = message
            log.warning("metrics.source_failed", source=source, error=message)

    def fine(self, source: str) -> None:
        if self.active.pop(source, None) is not None:
            log.info("metrics.source_recovered", source=source)


class KlabCollector(Collector):
    """The families of `catalogue`, from the history at `history` and the goldens of `store`.

    `only_run` restricts the run families to one run (the push after a run); `store` None
    leaves the golden families empty (and `klab_store_up` absent).
    """

    def __init__(
        self,
        history: Path,
        *,
        store: Callable[[], Store] | None = None,
        window_runs: int = DEFAULT_WINDOW,
        only_run: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history = history
        self.store = store
        self.window_runs = window_runs
        self.only_run = only_run
        self.clock = clock
        self._once = _Once()

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        snap = self._snapshot(out)
        if snap is not None:
            _history_families(out, snap)
            self._trace_families(out, snap)
        if self.store is not None:
            self._golden_families(out)
        yield from out.all()

    # -- sources ---------------------------------------------------------------------------

    def _snapshot(self, out: _Families) -> HistorySnapshot | None:
        try:
            snap = read_snapshot(self.history, window_runs=self.window_runs)
        except ImageFactoryError as exc:
            self._once.problem("history", str(exc))
            out.gauge("klab_history_up", [], 0)
            return None
        self._once.fine("history")
        out.gauge("klab_history_up", [], 1)
        if self.only_run is not None:
            _keep_run(snap, self.only_run)
        out.gauge("klab_history_runs", [], len(snap.runs))
        return snap

    def _golden_families(self, out: _Families) -> None:
        assert self.store is not None
        try:
            rows = golden_rows(self.store())
        except (ImageFactoryError, OSError) as exc:
            self._once.problem("store", str(exc))
            out.gauge("klab_store_up", [], 0)
            return
        self._once.fine("store")
        out.gauge("klab_store_up", [], 1)
        now = self.clock()
        for row in rows:
            _golden(out, row, now)

    def _trace_families(self, out: _Families, snap: HistorySnapshot) -> None:
        newest = snap.newest_run()
        if newest is None:
            return
        for row in snap.distro_runs:
            if row.run_id != newest.run_id or not row.artifacts_dir:
                continue
            for script in SCRIPTS:
                source = f"{row.artifacts_dir}/bpftrace/{script}.json"
                labels = [row.run_id, row.distro, script]
                try:
                    trace = read_trace(Path(row.artifacts_dir), script)
                except BpftraceFileError as exc:
                    self._once.problem(source, str(exc))
                    out.gauge("klab_bpftrace_script_up", labels, 0)
                    continue
                if trace is None:
                    self._once.problem(source, "absent (no parsed trace for this run)")
                    continue
                self._once.fine(source)
                out.gauge("klab_bpftrace_script_up", labels, 1 if trace.attached else 0)
                _trace(out, row.run_id, row.distro, trace)


def _keep_run(snap: HistorySnapshot, run_id: str) -> None:
    snap.runs = [r for r in snap.runs if r.run_id == run_id]
    snap.distro_runs = [r for r in snap.distro_runs if r.run_id == run_id]
    snap.last_tests = {k: v for k, v in snap.last_tests.items() if v.run_id == run_id}
    snap.rises = snap.rises if snap.runs else []


def _history_families(out: _Families, snap: HistorySnapshot) -> None:
    for (distro, test), last in snap.last_tests.items():
        out.gauge("klab_test_last_verdict", [distro, test, last.verdict, last.run_id], 1)
        if last.duration_s is not None:
            out.gauge("klab_test_last_duration_seconds", [distro, test], last.duration_s)
    for stat in snap.flaky:
        out.gauge("klab_test_flake_ratio", [stat.distro, stat.key], stat.rate)
    for rise in snap.rises:
        if rise.median_s > 0:
            out.gauge("klab_test_slowdown_ratio", [rise.distro, rise.test], rise.rise)
    for run in snap.runs:
        labels = [run.run_id, run.selection]
        out.gauge("klab_run_start_timestamp_seconds", labels, run.started)
        if run.finished is not None:
            out.gauge("klab_run_wall_seconds", labels, max(0.0, run.finished - run.started))
    for row in snap.distro_runs:
        for verdict in VERDICTS:
            out.gauge(
                "klab_run_tests",
                [row.run_id, row.selection, row.distro, verdict],
                row.verdicts.get(verdict, 0),
            )
        if row.pass_ratio is not None:
            out.gauge("klab_run_pass_ratio", [row.run_id, row.distro], row.pass_ratio)
        if row.duration_s is not None:
            out.gauge("klab_run_distro_duration_seconds", [row.run_id, row.distro], row.duration_s)
    _newest_families(out, snap)


def _newest_families(out: _Families, snap: HistorySnapshot) -> None:
    newest = snap.newest_per_distro()
    for distro, row in newest.items():
        for verdict in VERDICTS:
            out.gauge(
                "klab_last_run_tests", [distro, verdict, row.run_id], row.verdicts.get(verdict, 0)
            )
        if row.pass_ratio is not None:
            out.gauge("klab_last_run_pass_ratio", [distro, row.run_id], row.pass_ratio)
        earlier = [
            r.pass_ratio
            for r in snap.distro_runs
            if r.distro == distro and r is not row and r.pass_ratio is not None
        ]
        if earlier:
            out.gauge("klab_window_pass_ratio", [distro], sum(earlier) / len(earlier))


def _golden(out: _Families, row: GoldenRow, now: float) -> None:
    key = [row.lineage, row.distro]
    out.gauge("klab_golden_info", [*key, row.build_id, row.zfs_version], 1)
    if row.built is not None:
        out.gauge("klab_golden_built_timestamp_seconds", key, row.built)
        out.gauge("klab_golden_age_seconds", key, max(0.0, now - row.built))
    out.gauge("klab_golden_size_bytes", [*key, "allocated"], row.allocated)
    out.gauge("klab_golden_size_bytes", [*key, "virtual"], row.virtual_size)
    if row.build_seconds is not None:
        out.gauge("klab_golden_build_seconds", key, row.build_seconds)


def _trace(out: _Families, run_id: str, distro: str, trace: ZioTrace | TxgTrace | ArcTrace) -> None:
    if isinstance(trace, ZioTrace):
        for op, hist in sorted(trace.histograms.items()):
            out.histogram("klab_zio_latency_seconds", [run_id, distro, op], hist)
    elif isinstance(trace, TxgTrace):
        for pool, hist in sorted(trace.histograms.items()):
            out.histogram("klab_txg_sync_duration_seconds", [run_id, distro, pool], hist)
    elif trace.attached:
        if trace.hit_ratio is not None:
            out.gauge("klab_arc_hit_ratio", [run_id, distro], trace.hit_ratio)
        for state, n in sorted(trace.moved_to.items()):
            out.gauge("klab_arc_state_changes", [run_id, distro, state], n)
        for state, n in sorted(trace.evicted_bytes.items()):
            out.gauge("klab_arc_evicted_bytes", [run_id, distro, state], n)
