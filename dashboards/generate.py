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


# -- (1) the pass/fail matrix ------------------------------------------------------------


def matrix() -> dashboard.Dashboard:
    d = base(
        "klab-matrix",
        "klab: pass/fail matrix",
        "Each test's newest verdict on each distro (tests x distros), and the newest run's "
        "unexpected failures.",
    ).with_variable(distro_variable("klab_test_last_verdict"))
    d = d.with_panel(
        stat.Panel()
        .title("Unexpected failures in the newest run")
        .description("unexpected-failure and crashed verdicts; 0 is the only green")
        .with_target(
            query(
                'sum by (distro) (klab_last_run_tests{distro=~"$distro", '
                'verdict=~"unexpected-failure|crashed"})',
                legend="{{distro}}",
                instant=True,
            )
        )
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(value=None, color="green"), Threshold(value=1, color="red")])
        )
        .height(5)
        .span(12)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Pass ratio of the newest run")
        .with_target(
            query('klab_last_run_pass_ratio{distro=~"$distro"}', legend="{{distro}}", instant=True)
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(5)
        .span(12)
    )
    d = d.with_panel(
        table.Panel()
        .title("Verdicts: tests x distros")
        .description("The newest verdict of each test on each distro, in verdict colours.")
        .with_target(
            query(
                'max by (distro, test, verdict) (klab_test_last_verdict{distro=~"$distro"})',
                instant=True,
                fmt="table",
            )
        )
        .with_transformation(
            DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "distro", "rowField": "test", "valueField": "verdict"},
            )
        )
        .mappings(verdict_mappings())  # type: ignore[arg-type]
        .height(24)
        .span(24)
    )
    return d


# -- (2) the pass-rate trend -----------------------------------------------------------------


def pass_rate() -> dashboard.Dashboard:
    d = base(
        "klab-pass-rate",
        "klab: pass-rate trend",
        "Pass ratio per distro over the last runs (the exporter's window, 100 by default): "
        "passes / tests that ran.",
    ).with_variable(distro_variable("klab_run_pass_ratio"))
    d = d.with_panel(
        barchart.Panel()
        .title("Pass ratio per run (last 100 runs)")
        .description("One bar per run and distro; run ids sort by start time.")
        .with_target(
            query(
                'klab_run_pass_ratio{distro=~"$distro"}',
                instant=True,
                fmt="table",
                legend="{{distro}}",
            )
        )
        .with_transformation(
            DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "distro", "rowField": "run_id", "valueField": "Value"},
            )
        )
        .x_field("run_id\\distro")
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(12)
        .span(24)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Pass ratio of the newest run, over time")
        .with_target(query('klab_last_run_pass_ratio{distro=~"$distro"}', legend="{{distro}}"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(10)
        .span(16)
    )
    d = d.with_panel(
        stat.Panel()
        .title("Window mean before the newest run")
        .with_target(
            query('klab_window_pass_ratio{distro=~"$distro"}', legend="{{distro}}", instant=True)
        )
        .unit("percentunit")
        .height(10)
        .span(8)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Run wall time")
        .with_target(query("max by (selection) (klab_run_wall_seconds)", legend="{{selection}}"))
        .unit("s")
        .height(8)
        .span(24)
    )
    return d


# -- (3) zio latency -----------------------------------------------------------------------


def zio() -> dashboard.Dashboard:
    sel = 'distro=~"$distro", op=~"$op", run_id=~"$run_id"'
    d = (
        base(
            "klab-zio",
            "klab: zio latency",
            "zio latency per operation (read, write, scrub...) of the newest run, from "
            "bpftrace/zio.json, and its txg sync durations (bpftrace/txg.json).",
        )
        .with_variable(distro_variable("klab_zio_latency_seconds_bucket"))
        .with_variable(
            variable(
                "op",
                "Operation",
                'label_values(klab_zio_latency_seconds_bucket{distro=~"$distro"}, op)',
            )
        )
        .with_variable(
            variable(
                "run_id",
                "Run",
                'label_values(klab_zio_latency_seconds_bucket{distro=~"$distro"}, run_id)',
            )
        )
    )
    d = d.with_panel(
        heatmap.Panel()
        .title("zio latency heatmap: $op")
        .description("Bucket counts of the run's zios (bpftrace hist, converted to seconds).")
        .repeat("op")
        .repeat_direction("h")
        .with_target(
            query(
                f"sum by (le) (klab_zio_latency_seconds_bucket{{{sel}}})",
                legend="{{le}}",
                fmt="heatmap",
            )
        )
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .height(10)
        .span(8)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("zio latency p50 / p99 per operation")
        .with_target(
            query(
                quantile(0.5, "op", "klab_zio_latency_seconds_bucket", sel),
                legend="p50 {{op}}",
            )
        )
        .with_target(
            query(
                quantile(0.99, "op", "klab_zio_latency_seconds_bucket", sel),
                legend="p99 {{op}}",
                ref="B",
            )
        )
        .unit("s")
        .height(9)
        .span(12)
    )
    txg = 'distro=~"$distro", run_id=~"$run_id"'
    d = d.with_panel(
        timeseries.Panel()
        .title("txg sync duration p50 / p99")
        .with_target(
            query(
                quantile(0.5, "pool", "klab_txg_sync_duration_seconds_bucket", txg),
                legend="p50 {{pool}}",
            )
        )
        .with_target(
            query(
                quantile(0.99, "pool", "klab_txg_sync_duration_seconds_bucket", txg),
                legend="p99 {{pool}}",
                ref="B",
            )
        )
        .unit("s")
        .height(9)
        .span(12)
    )
    return d


# -- (4) ARC efficiency --------------------------------------------------------------------


def arc() -> dashboard.Dashboard:
    d = base(
        "klab-arc",
        "klab: ARC efficiency",
        "ARC hit ratio, MRU/MFU traffic and evictions of the newest run (bpftrace/arc.json).",
    ).with_variable(distro_variable("klab_arc_hit_ratio"))
    d = d.with_panel(
        stat.Panel()
        .title("ARC hit ratio")
        .with_target(
            query('klab_arc_hit_ratio{distro=~"$distro"}', legend="{{distro}}", instant=True)
        )
        .unit("percentunit")
        .height(6)
        .span(8)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("ARC hit ratio over time")
        .with_target(query('klab_arc_hit_ratio{distro=~"$distro"}', legend="{{distro}} {{run_id}}"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .height(6)
        .span(16)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Buffers moved into MRU / MFU (and their ghosts)")
        .with_target(
            query(
                'sum by (state) (klab_arc_state_changes{distro=~"$distro"})',
                legend="{{state}}",
                instant=True,
            )
        )
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Bytes evicted per ARC state")
        .with_target(
            query(
                'sum by (state) (klab_arc_evicted_bytes{distro=~"$distro"})',
                legend="{{state}}",
                instant=True,
            )
        )
        .unit("bytes")
        .height(8)
        .span(12)
    )
    return d


# -- (5) flaky and slow tests ----------------------------------------------------------------


def flaky() -> dashboard.Dashboard:
    d = base(
        "klab-flaky-slow",
        "klab: flaky and slow tests",
        "Fail rates over the window, tests slower than their recent median, and the slowest "
        'tests\' durations over time ("scrub took 12 % longer").',
    ).with_variable(distro_variable("klab_test_last_duration_seconds"))
    d = d.with_panel(
        table.Panel()
        .title("Fail rate (runs with a failed attempt / runs)")
        .with_target(
            query('sort_desc(klab_test_flake_ratio{distro=~"$distro"})', instant=True, fmt="table")
        )
        .unit("percentunit")
        .height(10)
        .span(12)
    )
    d = d.with_panel(
        table.Panel()
        .title("Got slower in the newest run (vs the median of the last clean passes)")
        .with_target(
            query(
                'sort_desc(klab_test_slowdown_ratio{distro=~"$distro"})', instant=True, fmt="table"
            )
        )
        .unit("percentunit")
        .height(10)
        .span(12)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Durations of the 10 slowest tests")
        .with_target(
            query(
                'topk(10, klab_test_last_duration_seconds{distro=~"$distro"})',
                legend="{{distro}} {{test}}",
            )
        )
        .unit("s")
        .height(10)
        .span(24)
    )
    return d


# -- (6) goldens ---------------------------------------------------------------------------


def goldens() -> dashboard.Dashboard:
    d = base(
        "klab-goldens",
        "klab: goldens",
        "Each golden in the store: age, OpenZFS version, build id, size and build time.",
    ).with_variable(distro_variable("klab_golden_info"))
    d = d.with_panel(
        table.Panel()
        .title("Goldens (lineage, distro, build id, OpenZFS)")
        .with_target(query('klab_golden_info{distro=~"$distro"}', instant=True, fmt="table"))
        .height(8)
        .span(24)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Age")
        .with_target(
            query(
                'klab_golden_age_seconds{distro=~"$distro"}',
                legend="{{lineage}} {{distro}}",
                instant=True,
            )
        )
        .unit("s")
        .height(8)
        .span(8)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title("Size on disk")
        .with_target(
            query(
                'klab_golden_size_bytes{distro=~"$distro", kind="allocated"}',
                legend="{{lineage}} {{distro}}",
                instant=True,
            )
        )
        .unit("bytes")
        .height(8)
        .span(8)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title("Build time")
        .with_target(
            query('klab_golden_build_seconds{distro=~"$distro"}', legend="{{lineage}} {{distro}}")
        )
        .unit("s")
        .height(8)
        .span(8)
    )
    return d


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
