"""The dashboards against a real Prometheus: every panel's query returns series.

A history is built from the recorded run directories (tests/fixtures/runs/) with the
project's own judge and writer, a golden is published in a real files store, `klab metrics
serve` runs as its own process on a free loopback port and Debian's `prometheus` scrapes it
every second.  After two scrapes every panel query of every committed dashboard (template
variables set to their "All" value) and every variable query runs through Prometheus' HTTP
API and must return series.  No VM; no system service.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from tests.fixtures.metrics_history import build_history
from tests.integration.metrics.servers import (
    REPO,
    Prometheus,
    klab_env,
    need,
    process,
    prometheus,
    wait_for,
)

DASHBOARDS = sorted((REPO / "dashboards" / "json").glob("*.json"))
LEAF = "klab-ztest-debian13"
BUILD_ID = "20261120T101500Z-metrics"
_VAR = re.compile(r"\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def publish_golden(root: Path, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real golden in a files store, built ten days ago, with its build manifest."""
    store = FileStore(root)
    volume = store.create_build_volume(LEAF, BUILD_ID, 1 << 20)
    built = (datetime.now(UTC) - timedelta(days=10)).isoformat(timespec="seconds")
    store.publish(
        volume,
        Provenance(
            distro="debian13",
            lineage="ztest",
            build_id=BUILD_ID,
            built_at=built,
            zfs_version="2.3.9-1",
            suite_version="2.3.9",
        ),
    )
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(state))
    from imagefactory.builder.statedir import build_dir

    manifest = build_dir(LEAF, BUILD_ID, create=True) / "manifest.json"
    manifest.write_text(json.dumps({"build_id": BUILD_ID, "wall_seconds": 1234.5}))


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prom")
    state = tmp / "state"
    history = tmp / "history.sqlite"
    build_history(history)
    with pytest.MonkeyPatch.context() as mp:
        publish_golden(tmp / "store", state, mp)
    env = klab_env(state)
    argv = [
        sys.executable,
        "-m",
        "imagefactory",
        "metrics",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--history",
        str(history),
        "--store",
        f"file:{tmp / 'store'}",
    ]
    addr_file = state / "metrics.addr"
    with process(argv, tmp / "exporter.log", env) as exporter:
        wait_for("metrics.addr", lambda: exporter.poll() is None and addr_file.is_file())
        target = addr_file.read_text(encoding="utf-8").strip()
        with prometheus(tmp, target) as prom:
            wait_for(
                "two scrapes of the exporter",
                lambda: any(
                    float(r["value"][1]) >= 2
                    for r in prom.query("count_over_time(klab_history_up[5m])")
                ),
            )
            yield prom
    assert not addr_file.exists(), "metrics.addr must be removed when the exporter ends"


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _all_values(dashboard: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v.get("allValue") or ".*" for v in dashboard["templating"]["list"]}


def _substitute(expr: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"{expr}: ${name} is not a template variable of the dashboard"
        return values[name]

    return _VAR.sub(one, expr)


def panel_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        values = _all_values(board)
        for panel in _panels(board):
            for target in panel.get("targets", []):
                found.append((path.stem, panel["title"], _substitute(target["expr"], values)))
    return found


def variable_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        values = _all_values(board)
        for var in board["templating"]["list"]:
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            found.append((path.stem, var["name"], _substitute(query, values)))
    return found


def test_there_are_six_dashboards_with_queries() -> None:
    assert [p.stem for p in DASHBOARDS] == sorted(
        ["klab-arc", "klab-flaky-slow", "klab-goldens", "klab-matrix", "klab-pass-rate", "klab-zio"]
    )
    assert len(panel_queries()) >= 6 * 2


@pytest.mark.parametrize(("board", "title", "expr"), panel_queries())
def test_every_panel_query_returns_series(
    scraped: Prometheus, board: str, title: str, expr: str
) -> None:
    result = scraped.query(expr)
    assert result, f"{board} / {title}: {expr} returned no series"
    assert all(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in result), (board, title, result)


@pytest.mark.parametrize(("board", "name", "query"), variable_queries())
def test_every_variable_has_values(scraped: Prometheus, board: str, name: str, query: str) -> None:
    match = _LABEL_VALUES.match(query)
    assert match, f"{board}: ${name} is not a label_values() query: {query}"
    metric, label = match.groups()
    values = scraped.api(f"label/{label}/values", **{"match[]": metric})
    assert values, f"{board}: ${name} ({query}) has no values"


def test_the_matrix_shows_the_recorded_run(scraped: Prometheus) -> None:
    """The real debian13 run's two unexpected failures reach Prometheus as recorded."""
    result = scraped.query('klab_test_last_verdict{verdict="unexpected-failure"}')
    tests = sorted(r["metric"]["test"] for r in result)
    assert tests == ["rsend/send-c_verify_ratio", "rsend/send_encrypted_hierarchy"]
    up = scraped.query("klab_store_up")
    assert [r["value"][1] for r in up] == ["1"]


def test_shipped_scrape_config_and_rules_pass_promtool() -> None:
    promtool = need("promtool")
    for argv in (
        [promtool, "check", "config", "prometheus.yml"],
        [promtool, "check", "rules", *sorted(str(p) for p in (REPO / "alerts").glob("*.yml"))],
        [promtool, "test", "rules", str(REPO / "alerts" / "tests" / "klab_test.yml")],
    ):
        proc = subprocess.run(
            argv, cwd=REPO / "dashboards", capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout}{proc.stderr}"
