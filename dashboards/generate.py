#!/usr/bin/env python3
"""Generate the six klab Grafana dashboards (dashboards/json/*.json) with grafana-foundation-sdk.

    .venv/bin/python dashboards/generate.py           write the JSON
    .venv/bin/python dashboards/generate.py --check   exit 1 when the committed JSON differs

The dashboards read the exporter's families (README, "Metrics") from the Prometheus data
source the provisioning files declare (uid `klab-prometheus`).  Every panel's query uses
only `=~"$var"` matchers for its template variables, whose "All" value is `.*`: the tests
substitute `.*` and run every query against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    barchart,
    bargauge,
    dashboard,
    heatmap,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    DashboardCursorSync,
    DataSourceRef,
    DataTransformerConfig,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).resolve().parent / "json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="klab-prometheus")
TAGS = ["klab", "openzfs"]
VERDICT_COLOURS = {
    "pass": "green",
    "flaky": "yellow",
    "expected": "blue",
    "unexpected-pass": "purple",
    "skip": "text",
    "absent": "text",
    "unexpected-failure": "red",
    "crashed": "dark-red",
}


def query(
    expr: str, *, legend: str = "", instant: bool = False, fmt: str = "", ref: str = "A"
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).datasource(DATASOURCE).ref_id(ref)
    if legend:
        q = q.legend_format(legend)
    if instant:
        q = q.instant()
    if fmt:
        q = q.format(PromQueryFormat(fmt))
    return q


def quantile(q: float, by: str, bucket: str, sel: str) -> str:
    return f"histogram_quantile({q:g}, sum by (le, {by}) ({bucket}{{{sel}}}))"


def variable(name: str, label: str, values: str) -> dashboard.QueryVariable:
    """A multi-value variable from `label_values(...)`; "All" is `.*` (regex matchers)."""
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": values, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def distro_variable(metric: str) -> dashboard.QueryVariable:
    return variable("distro", "Distro", f"label_values({metric}, distro)")


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("utc")
    )


def verdict_mappings() -> list[ValueMap]:
    return [
        ValueMap(
            {
                verdict: ValueMappingResult(text=verdict, color=colour, index=i)
                for i, (verdict, colour) in enumerate(VERDICT_COLOURS.items())
            }
        )
    ]


def panel(
    kind: Callable[[], Any],
    title: str,
    *targets: prometheus.Dataquery,
    height: int,
    span: int,
    unit: str = "",
    bounds: tuple[int, int] | None = None,
    description: str = "",
) -> Any:
    """One panel of any kind (`stat.Panel`, `table.Panel`...): title, queries, unit, optional
    min/max, size; the caller chains what only that panel has (thresholds, transformations)."""
    built = kind().title(title)
    if description:
        built = built.description(description)
    for target in targets:
        built = built.with_target(target)
    if unit:
        built = built.unit(unit)
    if bounds is not None:
        built = built.min(bounds[0]).max(bounds[1])
    return built.height(height).span(span)


def with_panels(board: dashboard.Dashboard, *panels: Any) -> dashboard.Dashboard:
    for one in panels:
        board = board.with_panel(one)
    return board


def grid(*, rows: str, value: str) -> DataTransformerConfig:
    """A table of one row per `rows` label and one column per distro."""
    return DataTransformerConfig(
        id_val="groupingToMatrix",
        options={"columnField": "distro", "rowField": rows, "valueField": value},
    )


RATIO = (0, 1)
"""A pass or hit ratio's axis: 0 to 1, shown as a percentage."""
DISTRO = 'distro=~"$distro"'


# -- (1) the pass/fail matrix ------------------------------------------------------------


def matrix() -> dashboard.Dashboard:
    return with_panels(
        base(
            "klab-matrix",
            "klab: pass/fail matrix",
            "Each test's newest verdict on each distro (tests x distros), and the newest run's "
            "unexpected failures.",
        ).with_variable(distro_variable("klab_test_last_verdict")),
        panel(
            stat.Panel,
            "Unexpected failures in the newest run",
            query(
                'sum by (distro) (klab_last_run_tests{distro=~"$distro", '
                'verdict=~"unexpected-failure|crashed"})',
                legend="{{distro}}",
                instant=True,
            ),
            description="unexpected-failure and crashed verdicts; 0 is the only green",
            height=5,
            span=12,
        ).thresholds(
            dashboard.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=1, color="red")])
        ),
        panel(
            bargauge.Panel,
            "Pass ratio of the newest run",
            query(f"klab_last_run_pass_ratio{{{DISTRO}}}", legend="{{distro}}", instant=True),
            unit="percentunit",
            bounds=RATIO,
            height=5,
            span=12,
        ),
        panel(
            table.Panel,
            "Verdicts: tests x distros",
            query(
                f"max by (distro, test, verdict) (klab_test_last_verdict{{{DISTRO}}})",
                instant=True,
                fmt="table",
            ),
            description="The newest verdict of each test on each distro, in verdict colours.",
            height=24,
            span=24,
        )
        .with_transformation(grid(rows="test", value="verdict"))
        .mappings(verdict_mappings()),
    )


# -- (2) the pass-rate trend -----------------------------------------------------------------


def pass_rate() -> dashboard.Dashboard:
    return with_panels(
        base(
            "klab-pass-rate",
            "klab: pass-rate trend",
            "Pass ratio per distro over the last runs (the exporter's window, 100 by default): "
            "passes / tests that ran.",
        ).with_variable(distro_variable("klab_run_pass_ratio")),
        panel(
            barchart.Panel,
            "Pass ratio per run (last 100 runs)",
            query(
                f"klab_run_pass_ratio{{{DISTRO}}}", instant=True, fmt="table", legend="{{distro}}"
            ),
            description="One bar per run and distro; run ids sort by start time.",
            unit="percentunit",
            bounds=RATIO,
            height=12,
            span=24,
        )
        .with_transformation(grid(rows="run_id", value="Value"))
        .x_field("run_id\\distro"),
        panel(
            timeseries.Panel,
            "Pass ratio of the newest run, over time",
            query(f"klab_last_run_pass_ratio{{{DISTRO}}}", legend="{{distro}}"),
            unit="percentunit",
            bounds=RATIO,
            height=10,
            span=16,
        ),
        panel(
            stat.Panel,
            "Window mean before the newest run",
            query(f"klab_window_pass_ratio{{{DISTRO}}}", legend="{{distro}}", instant=True),
            unit="percentunit",
            height=10,
            span=8,
        ),
        panel(
            timeseries.Panel,
            "Run wall time",
            query("max by (selection) (klab_run_wall_seconds)", legend="{{selection}}"),
            unit="s",
            height=8,
            span=24,
        ),
    )


# -- (3) zio latency -----------------------------------------------------------------------


def percentiles(title: str, by: str, bucket: str, sel: str) -> Any:
    """A p50 / p99 time series of a latency histogram, one line per `by` label."""
    return panel(
        timeseries.Panel,
        title,
        query(quantile(0.5, by, bucket, sel), legend=f"p50 {{{{{by}}}}}"),
        query(quantile(0.99, by, bucket, sel), legend=f"p99 {{{{{by}}}}}", ref="B"),
        unit="s",
        height=9,
        span=12,
    )


def zio() -> dashboard.Dashboard:
    bucket = "klab_zio_latency_seconds_bucket"
    sel = 'distro=~"$distro", op=~"$op", run_id=~"$run_id"'
    board = base(
        "klab-zio",
        "klab: zio latency",
        "zio latency per operation (read, write, scrub...) of the newest run, from "
        "bpftrace/zio.json, and its txg sync durations (bpftrace/txg.json).",
    ).with_variable(distro_variable(bucket))
    for name, label in (("op", "Operation"), ("run_id", "Run")):
        board = board.with_variable(
            variable(name, label, f"label_values({bucket}{{{DISTRO}}}, {name})")
        )
    return with_panels(
        board,
        panel(
            heatmap.Panel,
            "zio latency heatmap: $op",
            query(f"sum by (le) ({bucket}{{{sel}}})", legend="{{le}}", fmt="heatmap"),
            description="Bucket counts of the run's zios (bpftrace hist, converted to seconds).",
            height=10,
            span=8,
        )
        .repeat("op")
        .repeat_direction("h")
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s")),
        percentiles("zio latency p50 / p99 per operation", "op", bucket, sel),
        percentiles(
            "txg sync duration p50 / p99",
            "pool",
            "klab_txg_sync_duration_seconds_bucket",
            'distro=~"$distro", run_id=~"$run_id"',
        ),
    )


# -- (4) ARC efficiency --------------------------------------------------------------------


def arc() -> dashboard.Dashboard:
    def by_state(title: str, family: str, unit: str = "") -> Any:
        expr = f"sum by (state) ({family}{{{DISTRO}}})"
        target = query(expr, legend="{{state}}", instant=True)
        return panel(bargauge.Panel, title, target, unit=unit, height=8, span=12)

    hit_ratio = f"klab_arc_hit_ratio{{{DISTRO}}}"
    return with_panels(
        base(
            "klab-arc",
            "klab: ARC efficiency",
            "ARC hit ratio, MRU/MFU traffic and evictions of the newest run (bpftrace/arc.json).",
        ).with_variable(distro_variable("klab_arc_hit_ratio")),
        panel(
            stat.Panel,
            "ARC hit ratio",
            query(hit_ratio, legend="{{distro}}", instant=True),
            unit="percentunit",
            height=6,
            span=8,
        ),
        panel(
            timeseries.Panel,
            "ARC hit ratio over time",
            query(hit_ratio, legend="{{distro}} {{run_id}}"),
            unit="percentunit",
            bounds=RATIO,
            height=6,
            span=16,
        ),
        by_state("Buffers moved into MRU / MFU (and their ghosts)", "klab_arc_state_changes"),
        by_state("Bytes evicted per ARC state", "klab_arc_evicted_bytes", unit="bytes"),
    )


# -- (5) flaky and slow tests ----------------------------------------------------------------


def flaky() -> dashboard.Dashboard:
    def ranked(title: str, family: str) -> Any:
        target = query(f"sort_desc({family}{{{DISTRO}}})", instant=True, fmt="table")
        return panel(table.Panel, title, target, unit="percentunit", height=10, span=12)

    return with_panels(
        base(
            "klab-flaky-slow",
            "klab: flaky and slow tests",
            "Fail rates over the window, tests slower than their recent median, and the slowest "
            'tests\' durations over time ("scrub took 12 % longer").',
        ).with_variable(distro_variable("klab_test_last_duration_seconds")),
        ranked("Fail rate (runs with a failed attempt / runs)", "klab_test_flake_ratio"),
        ranked(
            "Got slower in the newest run (vs the median of the last clean passes)",
            "klab_test_slowdown_ratio",
        ),
        panel(
            timeseries.Panel,
            "Durations of the 10 slowest tests",
            query(
                f"topk(10, klab_test_last_duration_seconds{{{DISTRO}}})",
                legend="{{distro}} {{test}}",
            ),
            unit="s",
            height=10,
            span=24,
        ),
    )


# -- (6) goldens ---------------------------------------------------------------------------


def goldens() -> dashboard.Dashboard:
    def per_golden(kind: Callable[[], Any], title: str, expr: str, unit: str) -> Any:
        instant = kind is not timeseries.Panel  # a time series plots a range
        target = query(expr, legend="{{lineage}} {{distro}}", instant=instant)
        return panel(kind, title, target, unit=unit, height=8, span=8)

    return with_panels(
        base(
            "klab-goldens",
            "klab: goldens",
            "Each golden in the store: age, OpenZFS version, build id, size and build time.",
        ).with_variable(distro_variable("klab_golden_info")),
        panel(
            table.Panel,
            "Goldens (lineage, distro, build id, OpenZFS)",
            query(f"klab_golden_info{{{DISTRO}}}", instant=True, fmt="table"),
            height=8,
            span=24,
        ),
        per_golden(bargauge.Panel, "Age", f"klab_golden_age_seconds{{{DISTRO}}}", "s"),
        per_golden(
            bargauge.Panel,
            "Size on disk",
            f'klab_golden_size_bytes{{{DISTRO}, kind="allocated"}}',
            "bytes",
        ),
        per_golden(timeseries.Panel, "Build time", f"klab_golden_build_seconds{{{DISTRO}}}", "s"),
    )


DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "klab-matrix": matrix,
    "klab-pass-rate": pass_rate,
    "klab-zio": zio,
    "klab-arc": arc,
    "klab-flaky-slow": flaky,
    "klab-goldens": goldens,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    """The dashboard's JSON, normalised by one pass through the SDK's models: decoding fills
    in the panels' default field config, so the committed file is a fixed point of the
    round-trip the tests check (what Grafana saves back looks the same)."""
    register_default_plugins()
    first = json.loads(json.dumps(build().build(), cls=JSONEncoder))
    model = Dashboard.from_json(first)
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    stale = []
    for uid, build in DASHBOARDS.items():
        path = args.out / f"{uid}.json"
        text = render(build)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    if stale:
        print(f"out of date (run dashboards/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
