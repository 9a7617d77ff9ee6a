"""The guest hook runner (hooks/runner/run-hooks.sh), run here with bash on files in tmp_path.

The guest runs the same script; only the port, console and poweroff are redirected through
the runner's documented environment variables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imagefactory.paths import hooks_dir
from imagefactory.vm.channel import HookTracker, hook_output_tail, parse_status_line

RUNNER = hooks_dir() / "runner" / "run-hooks.sh"


@dataclass
class Run:
    returncode: int
    status: list[dict[str, Any]]
    console: str
    state: Path


def run_hooks(tmp_path: Path, hooks: list[tuple[str, float, str]], **env: str) -> Run:
    state = tmp_path / "state"
    (state / "hooks").mkdir(parents=True, exist_ok=True)
    listing = ""
    for name, timeout, body in hooks:
        script = state / "hooks" / name
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body)
        script.chmod(0o755)
        listing += f"{timeout:g}\t{name}\n"
    (state / "hooks.list").write_text(listing)
    port, console = tmp_path / "port", tmp_path / "console"
    port.touch()
    environ = {
        "PATH": os.environ["PATH"],
        "LC_ALL": "C",
        "IMAGEFACTORY_STATUS_PORT": str(port),
        "IMAGEFACTORY_CONSOLE": str(console),
        "IMAGEFACTORY_POWEROFF": "0",
        "IMAGEFACTORY_CLEANUP": "0",
        **env,
    }
    proc = subprocess.run(
        ["bash", str(RUNNER), str(state)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    status = [json.loads(line) for line in port.read_text().splitlines()]
    text = console.read_text() if console.exists() else ""
    return Run(proc.returncode, status, text, state)


def events(run: Run) -> list[tuple[str | None, str]]:
    return [(s.get("hook"), s["event"]) for s in run.status]


def test_runner_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    subprocess.run([shellcheck, "-x", str(RUNNER)], check=True)


def test_hooks_run_in_order_and_report_start_end_and_done(tmp_path: Path) -> None:
    run = run_hooks(
        tmp_path,
        [("10-a.sh", 10, "echo from a\n"), ("20-b.sh", 10, "echo from b >&2\n")],
    )
    assert run.returncode == 0
    assert events(run) == [
        (None, "begin"),
        ("10-a.sh", "start"),
        ("10-a.sh", "end"),
        ("20-b.sh", "start"),
        ("20-b.sh", "end"),
        (None, "done"),
    ]
    assert all(s["rc"] == 0 for s in run.status if s["event"] == "end")
    assert all(s["seconds"] >= 0 for s in run.status if s["event"] == "end")
    assert run.status[0]["hooks"] == 2
    assert hook_output_tail(run.console, "10-a.sh") == ["from a"]
    assert hook_output_tail(run.console, "20-b.sh") == ["from b"]


def test_the_first_failure_stops_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "third-ran"
    run = run_hooks(
        tmp_path,
        [
            ("10-a.sh", 10, "true\n"),
            ("20-b.sh", 10, "echo about to fail\nexit 3\n"),
            ("30-c.sh", 10, f"touch {marker}\n"),
        ],
    )
    assert events(run)[-1] == ("20-b.sh", "end")
    assert run.status[-1]["rc"] == 3
    assert not marker.exists()
    assert hook_output_tail(run.console, "20-b.sh") == ["about to fail"]


def test_a_hook_past_its_timeout_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    run = run_hooks(
        tmp_path,
        [("10-slow.sh", 1, f"sleep 60 &\necho $! > {pid_file}\nwait\n")],
    )
    last = run.status[-1]
    assert (last["hook"], last["event"], last["rc"]) == ("10-slow.sh", "timeout", 124)
    assert 1.0 <= last["seconds"] < 10
    child = int(pid_file.read_text())
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text()


def test_a_hook_exiting_124_early_is_a_failure_not_a_timeout(tmp_path: Path) -> None:
    run = run_hooks(tmp_path, [("10-a.sh", 30, "exit 124\n")])
    assert (run.status[-1]["event"], run.status[-1]["rc"]) == ("end", 124)


def test_hook_environment_comes_from_its_env_file(tmp_path: Path) -> None:
    state = tmp_path / "state" / "hooks"
    state.mkdir(parents=True)
    (state / "10-a.env").write_text("GREETING=hello world\nANSWER=42\n")
    run = run_hooks(tmp_path, [("10-a.sh", 10, 'echo "$GREETING/$ANSWER/$IMAGEFACTORY_HOOK"\n')])
    assert hook_output_tail(run.console, "10-a.sh") == ["hello world/42/10-a.sh"]


def test_hooks_cannot_write_to_the_status_port(tmp_path: Path) -> None:
    run = run_hooks(tmp_path, [("10-a.sh", 10, 'echo \'{"event":"done"}\' >&3 || echo closed\n')])
    assert events(run)[-1] == (None, "done")
    assert [e for e in events(run) if e == (None, "done")] == [(None, "done")]


def test_the_status_stream_drives_the_host_tracker(tmp_path: Path) -> None:
    run = run_hooks(tmp_path, [("10-a.sh", 10, "true\n"), ("20-b.sh", 10, "exit 2\n")])
    tracker = HookTracker(["10-a.sh", "20-b.sh"])
    for status in run.status:
        tracker.apply(parse_status_line(json.dumps(status), 0.0))
    assert (tracker.outcome, tracker.failed_hook) == ("failed", "20-b.sh")


def test_on_success_the_build_key_is_removed_and_others_kept(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text("ssh-ed25519 AAAA1 someone@else\nssh-ed25519 AAAA2 imagefactory-build-x-1\n")
    run_hooks(
        tmp_path,
        [("10-a.sh", 10, "true\n")],
        IMAGEFACTORY_BUILD_KEY="imagefactory-build-x-1",
        IMAGEFACTORY_AUTHORIZED_KEYS=str(keys),
    )
    assert keys.read_text() == "ssh-ed25519 AAAA1 someone@else\n"


def test_on_failure_the_build_key_stays_for_debugging(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text("ssh-ed25519 AAAA2 imagefactory-build-x-1\n")
    run_hooks(
        tmp_path,
        [("10-a.sh", 10, "exit 1\n")],
        IMAGEFACTORY_BUILD_KEY="imagefactory-build-x-1",
        IMAGEFACTORY_AUTHORIZED_KEYS=str(keys),
    )
    assert "imagefactory-build-x-1" in keys.read_text()


def test_on_success_cleanup_removes_the_state_directory(tmp_path: Path) -> None:
    run = run_hooks(tmp_path, [("10-a.sh", 10, "true\n")], IMAGEFACTORY_CLEANUP="1")
    # The runner would also remove its unit and itself from the guest's system paths; those
    # do not exist here, so only the state directory shows the effect.
    assert not run.state.exists()


def test_a_broken_state_directory_reports_an_error(tmp_path: Path) -> None:
    port = tmp_path / "port"
    port.touch()
    proc = subprocess.run(
        ["bash", str(RUNNER), str(tmp_path / "missing")],
        env={
            "PATH": os.environ["PATH"],
            "IMAGEFACTORY_STATUS_PORT": str(port),
            "IMAGEFACTORY_CONSOLE": str(tmp_path / "console"),
            "IMAGEFACTORY_POWEROFF": "0",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    (last,) = [json.loads(line) for line in port.read_text().splitlines()]
    assert last["event"] == "error"
    assert "no hook list" in (tmp_path / "console").read_text()


def test_a_missing_status_port_is_reported_on_the_console(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "hooks.list").write_text("")
    proc = subprocess.run(
        ["bash", str(RUNNER), str(tmp_path / "state")],
        env={
            "PATH": os.environ["PATH"],
            "IMAGEFACTORY_STATUS_PORT": str(tmp_path / "no-port"),
            "IMAGEFACTORY_CONSOLE": str(tmp_path / "console"),
            "IMAGEFACTORY_POWEROFF": "0",
            "IMAGEFACTORY_PORT_WAIT": "0",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "did not appear" in (tmp_path / "console").read_text()
