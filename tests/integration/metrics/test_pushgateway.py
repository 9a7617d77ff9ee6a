"""The push after a run, against a real `prometheus-pushgateway` on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.metrics_history import build_history
from tests.integration.metrics.servers import (
    free_port,
    http_get,
    klab_env,
    need,
    process,
    reachable,
    wait_for,
)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    binary = need("prometheus-pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: a
    # gateway of our own keeps its state in the test's directory, never another run's.
    argv = [
        binary,
        f"--web.listen-address=127.0.0.1:{port}",
        f"--persistence.file={tmp_path / 'pushgateway.data'}",
    ]
    with process(argv, tmp_path / "pushgateway.log") as proc:
        wait_for("the pushgateway", lambda: proc.poll() is None and reachable(f"{url}/-/ready"))
        yield url


def _push(tmp_path: Path, history: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "imagefactory",
            "metrics",
            "push",
            "last",
            "--pushgateway",
            url,
            "--history",
            str(history),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=klab_env(tmp_path / "state"),
    )


def test_push_sends_the_last_run_only(tmp_path: Path, gateway: str) -> None:
    history = tmp_path / "history.sqlite"
    ids = build_history(history, replays=3)
    proc = _push(tmp_path, history, gateway)
    assert proc.returncode == 0, proc.stderr
    assert f"pushed run {ids[-1]}" in proc.stdout
    text = http_get(f"{gateway}/metrics").decode()
    runs = {
        line.split('run_id="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("klab_run_tests{")
    }
    assert runs == {ids[-1]}
    assert 'job="klab"' in text and 'command="test"' in text
    assert any(
        line.startswith("klab_last_run_tests{")
        and 'verdict="unexpected-failure"' in line
        and line.endswith(" 2")
        for line in text.splitlines()
    ), text[:2000]


def test_a_gateway_that_is_down_is_one_line_and_exit_3(tmp_path: Path) -> None:
    history = tmp_path / "history.sqlite"
    build_history(history, replays=1)
    proc = _push(tmp_path, history, f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 3, proc.stderr
    assert "cannot push run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_push_at_a_runs_end(
    tmp_path: Path, gateway: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `klab test|rc --pushgateway` call after the run: rc's group is its own, and a
    gateway that is down is a warning line, never an exception (the exit status stands)."""
    import argparse

    from imagefactory.metrics.push import push_after_run

    history = tmp_path / "history.sqlite"
    ids = build_history(history, replays=2)
    push_after_run(argparse.Namespace(pushgateway=gateway, history=history), ids[0], command="rc")
    assert "metrics pushed to" in capsys.readouterr().out
    text = http_get(f"{gateway}/metrics").decode()
    assert f'command="rc",distro="debian13",instance="",job="klab",run_id="{ids[0]}"' in text
    down = f"http://127.0.0.1:{free_port()}"
    push_after_run(argparse.Namespace(pushgateway=down, history=history), ids[1], command="test")
    out = capsys.readouterr().out
    assert out.startswith("warning: cannot push run") and out.count("\n") == 1
    push_after_run(argparse.Namespace(pushgateway=None, history=history), ids[1], command="test")
    assert capsys.readouterr().out == ""
