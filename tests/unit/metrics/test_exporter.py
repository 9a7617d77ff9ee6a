"""The exporter over real histories: families, error metrics, the address file, the CLI.

Scrapes go through a real HTTP server (`serve` in a thread, or `klab metrics serve` as a
process) on a free loopback port; the histories are real SQLite files.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from imagefactory.errors import UsageError
from imagefactory.metrics.catalogue import FAMILIES
from imagefactory.metrics.collector import KlabCollector
from imagefactory.metrics.server import ADDR_FILE, parse_listen, serve
from imagefactory.testrun.bpftrace import parse_output
from tests.fixtures.metrics_history import RUNS_DIR, build_history

REPO = Path(__file__).resolve().parents[3]


def scrape(collector: KlabCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("h") / "history.sqlite"
    build_history(path, replays=4)
    return path


def test_families_of_a_recorded_history(history: Path) -> None:
    got = scrape(KlabCollector(history))
    assert got["klab_history_up"] == [({}, 1.0)]
    assert got["klab_history_runs"] == [({}, 4.0)]
    last = {(s["test"], s["verdict"]) for s, _ in got["klab_test_last_verdict"]}
    assert ("rsend/send_encrypted_hierarchy", "unexpected-failure") in last
    assert len(last) == len(got["klab_test_last_verdict"])
    newest = {s["verdict"]: v for s, v in got["klab_last_run_tests"]}
    assert newest["unexpected-failure"] == 2
    assert newest["pass"] > 90
    ratio = got["klab_last_run_pass_ratio"][0][1]
    assert 0.9 < ratio < 1.0
    # The zio types are those the recorded trace shows (the parser's reading of its text).
    [zio_txt] = RUNS_DIR.glob("*/debian13/bpftrace/zio.txt")
    traced = parse_output(zio_txt.read_text(encoding="utf-8"), "zio")["summary"]["ops"]
    assert {s["op"] for s, _ in got["klab_zio_latency_seconds_count"]} == set(traced)
    assert {"read", "write"} <= set(traced)
    inf = [v for s, v in got["klab_zio_latency_seconds_bucket"] if s["le"] == "+Inf"]
    counts = [v for _, v in got["klab_zio_latency_seconds_count"]]
    assert sorted(inf) == sorted(counts)
    assert 0 < got["klab_arc_hit_ratio"][0][1] < 1
    assert {s["script"]: v for s, v in got["klab_bpftrace_script_up"]} == {
        "zio": 1,
        "txg": 1,
        "arc": 1,
    }
    wall = {s["run_id"]: v for s, v in got["klab_run_wall_seconds"]}
    assert set(wall.values()) == {2400.0}


@pytest.mark.parametrize("damage", ["missing", "garbage", "dropped table", "empty"])
def test_a_missing_or_damaged_history_is_up_0_never_a_crash(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.sqlite"
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    elif damage == "dropped table":
        build_history(path, replays=1)
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE test_results")
    elif damage == "empty":
        path.write_bytes(b"")
    collector = KlabCollector(path)
    for _ in range(3):
        got = scrape(collector)
        assert got["klab_history_up"] == [({}, 0.0)]
        assert "klab_test_last_verdict" not in got


def test_a_damaged_trace_is_script_up_0(tmp_path: Path) -> None:
    runs = tmp_path / "recorded"
    run = runs / "r1" / "debian13"
    (run / "bpftrace").mkdir(parents=True)
    log = next((REPO / "tests" / "fixtures" / "runs").glob("*/debian13/test.log"))
    (run / "test.log").write_bytes(log.read_bytes())
    (run / "bpftrace" / "zio.json").write_text('{"attached": true, "unit": "us"}')
    (run / "bpftrace" / "arc.json").write_text(
        '{"schema": "klab-bpftrace/1", "script": "arc", "attached": false, "reason": "ERROR"}'
    )
    path = tmp_path / "h.sqlite"
    build_history(path, replays=1, root=runs)
    got = scrape(KlabCollector(path))
    assert {s["script"]: v for s, v in got["klab_bpftrace_script_up"]} == {"zio": 0, "arc": 0}
    assert "klab_zio_latency_seconds_bucket" not in got
    assert "klab_arc_hit_ratio" not in got


def test_only_run_restricts_to_one_run(history: Path) -> None:
    everything = scrape(KlabCollector(history))
    oldest = min(s["run_id"] for s, _ in everything["klab_run_wall_seconds"])
    got = scrape(KlabCollector(history, only_run=oldest))
    assert {s["run_id"] for s, _ in got["klab_run_tests"]} == {oldest}


def test_every_family_is_in_the_catalogue(history: Path) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KlabCollector(history))
    names = {f.name for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert names == set(FAMILIES)


@pytest.mark.parametrize("bad", ["9101", "host:9101", "127.0.0.1:", "127.0.0.1:99999", ":1"])
def test_bad_listen_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(bad)


def test_serve_writes_and_removes_its_address(history: Path, tmp_path: Path) -> None:
    stop = threading.Event()
    lines: list[str] = []
    worker = threading.Thread(
        target=serve,
        args=(KlabCollector(history), "127.0.0.1:0", tmp_path),
        kwargs={"ready": lines.append, "stop": stop},
    )
    worker.start()
    addr_file = tmp_path / ADDR_FILE
    try:
        deadline = time.monotonic() + 30
        while not addr_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        addr = addr_file.read_text().strip()
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=30) as response:
            body = response.read().decode()
        assert "klab_history_up 1.0" in body
        assert lines and addr in lines[0]
    finally:
        stop.set()
        worker.join(timeout=30)
    assert not addr_file.exists()


def test_a_taken_port_is_exit_3_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "imagefactory",
                "metrics",
                "serve",
                "--no-store",
                "--listen",
                f"127.0.0.1:{port}",
                "--history",
                str(tmp_path / "none.sqlite"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                "IMAGEFACTORY_STATE": str(tmp_path),
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(REPO),
            },
        )
    assert proc.returncode == 3, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
