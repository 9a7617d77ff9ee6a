"""The test stage around a VM that never boots: clones, seeds, history, cleanup.

A real files store with a small published golden, real qemu-img and ssh-keygen; only QEMU
is replaced, by a script that fails (or hangs), because a clone whose VM cannot start is
exactly the infrastructure failure to pin here -- and it takes seconds instead of a boot.
The booting runs are in tests/e2e/test_ztest_stage.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.spec.loader import load_distro
from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.testrun.history import History
from imagefactory.testrun.kept import forgotten_clones, remove_forgotten_clones
from imagefactory.testrun.outcome import DistroStatus
from imagefactory.testrun.selection import parse_selection
from imagefactory.testrun.stage import Stage, StageOptions, run_stage
from tests.fixtures.stores import make_raw_image

LEAF = "klab-ztest-debian"
MIB = 1024 * 1024


def publish_golden(store: FileStore, tmp_path: Path) -> None:
    image = make_raw_image(tmp_path / "golden.raw", 1, size=64 * MIB)
    volume = store.create_build_volume(LEAF, "b1", 64 * MIB)
    volume = store.write_image(volume, image, source_format="raw")
    store.publish(
        volume,
        Provenance(
            distro="debian13",
            lineage="ztest",
            build_id="b1",
            zfs_version="2.3.9-1",
            suite_version="2.3.9-0+deb13u1",
        ),
    )


def fake_qemu(directory: Path, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "qemu-system-x86_64"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path)
    return store


def options(tmp_path: Path, qemu: Path, **extra: object) -> StageOptions:
    values: dict[str, object] = {
        "accel": "tcg",
        "qemu": str(qemu),
        "history": tmp_path / "history.sqlite",
        "runs_root": tmp_path / "runs",
        "results_disk_size": 16 * MIB,
    }
    values.update(extra)
    return StageOptions(**values)  # type: ignore[arg-type]


def test_a_vm_that_cannot_start_is_an_infrastructure_error_and_leaves_nothing(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = fake_qemu(tmp_path / "bin", "echo 'fake qemu: cannot start' >&2; exit 1")
    specs = [load_distro("debian13", kind="ztest"), load_distro("centos9", kind="ztest")]

    result = run_stage(
        specs, parse_selection(run=["atime/atime_001_pos"]), options(tmp_path, qemu), store=store
    )

    debian, centos = result.outcomes
    assert debian.status is DistroStatus.INFRA_ERROR
    assert "QEMU exited" in (debian.message or "")
    assert debian.golden_build_id == "b1" and debian.zfs_version == "2.3.9-1"
    assert centos.status is DistroStatus.NOT_BUILT
    assert "make golden-ztest DISTRO=centos9" in (centos.message or "")
    assert result.exit_status == 3
    # Nothing of the clone survives: no clone, no seed, no key, no results disk.
    assert store.list_clones() == []
    assert not (result.run_dir / "debian13" / ".work").exists()
    assert (
        (result.run_dir / "debian13" / "qemu.log")
        .read_text()
        .strip()
        .endswith("fake qemu: cannot start")
    )
    for name in ("matrix.txt", "summary.md", "junit.xml", "run.json"):
        assert (result.run_dir / name).is_file()
    run = json.loads((result.run_dir / "run.json").read_text())
    assert [d["status"] for d in run["distros"]] == ["infra-error", "not-built"]
    with History.open(tmp_path / "history.sqlite") as history:
        rows = history.runs()
    assert {(r.distro, r.status) for r in rows} == {
        ("debian13", "infra-error"),
        ("centos9", "not-built"),
    }


def test_keep_failed_keeps_the_clone_and_says_how_to_reach_it(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = fake_qemu(tmp_path / "bin", "exit 1")
    specs = [load_distro("debian13", kind="ztest")]

    result = run_stage(
        specs,
        parse_selection(run=["atime/atime_001_pos"]),
        options(tmp_path, qemu, keep="failed"),
        store=store,
    )

    [clone] = store.list_clones()
    [kept] = result.kept
    assert kept.clone.name == clone.name
    text = (result.run_dir / "debian13" / "kept-clone.txt").read_text()
    assert str(clone.path) in text and f"mac={kept.mac}" in text
    assert kept.ssh_key is not None and kept.ssh_key.is_file()
    assert f"ssh -i {kept.ssh_key}" in text
    assert "klab gc" in text
    # Its owner (this process) is alive: not forgotten yet.
    assert forgotten_clones(store) == []
    store.destroy_clone(clone)


def test_a_clone_kept_by_a_finished_run_is_removed_by_gc(tmp_path: Path, store: FileStore) -> None:
    bin_dir = tmp_path / "bin"
    fake_qemu(bin_dir, "exit 1")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KLAB_STATE_DIR": str(tmp_path / "state"),
        "KLAB_LOG_DIR": str(tmp_path / "runs"),
    }
    klab = [sys.executable, "-m", "imagefactory"]
    store_arg = f"file:{store.root}"

    test = subprocess.run(
        [*klab, "-q", "test", "debian13", "--run", "atime/atime_001_pos", "--keep",
         "--accel", "tcg", "--store", store_arg],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert test.returncode == 3, test.stderr
    assert "kept the clone of debian13" in test.stdout
    [clone] = store.list_clones()

    dry = subprocess.run(
        [*klab, "-q", "gc", "--dry-run", "--store", store_arg],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert f"would remove forgotten test clone {clone.name}" in dry.stdout

    assert remove_forgotten_clones(store) == [clone.name]
    assert store.list_clones() == []


def test_ctrl_c_during_a_boot_stops_qemu_and_destroys_the_clone(
    tmp_path: Path, store: FileStore
) -> None:
    pidfile = tmp_path / "qemu.pid"
    qemu = fake_qemu(tmp_path / "bin", f"echo $$ > {pidfile}; exec sleep 600")
    specs = [load_distro("debian13", kind="ztest")]
    stage = Stage(specs, parse_selection(run=["a/b"]), options(tmp_path, qemu), store)

    async def interrupted() -> None:
        task = asyncio.create_task(stage.run_async(1))
        for _ in range(300):
            await asyncio.sleep(0.1)
            if pidfile.exists() and pidfile.read_text().strip():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(interrupted())

    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert store.list_clones() == []
    assert not (stage.run_dir / "debian13" / ".work").exists()


def test_a_clone_that_never_starts_its_runner_is_stopped_after_the_boot_allowance(
    tmp_path: Path, store: FileStore
) -> None:
    pidfile = tmp_path / "qemu.pid"
    qemu = fake_qemu(tmp_path / "bin", f"echo $$ > {pidfile}; exec sleep 600")
    specs = [load_distro("debian13", kind="ztest")]

    result = run_stage(
        specs,
        parse_selection(run=["a/b"]),
        options(tmp_path, qemu, boot_allowance=3.0),
        store=store,
    )

    [outcome] = result.outcomes
    assert outcome.status is DistroStatus.INFRA_ERROR
    assert "did not start its test runner within 3s" in (outcome.message or "")
    pid = int(pidfile.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert store.list_clones() == []


def test_rerun_failed_runs_the_last_runs_unexpected_failures_again(
    tmp_path: Path,
    store: FileStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from imagefactory.cli import main
    from imagefactory.testrun.outcome import DistroOutcome
    from imagefactory.testrun.results import TestResult

    history_path = tmp_path / "history.sqlite"
    with History.open(history_path) as history:
        history.start_run("r1", selection="suite=quick", command="klab test all --suite quick")
        tests = [
            TestResult("atime/atime_001_pos", "PASS"),
            TestResult("casenorm/x_fail", "FAIL"),
            TestResult("cli_root/zpool_create/setup", "FAIL"),
        ]
        history.record_outcome("r1", DistroOutcome.from_tests("debian13", tests))
    bin_dir = fake_qemu(tmp_path / "bin", "exit 1").parent
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("KLAB_LOG_DIR", str(tmp_path / "runs"))

    status = main(
        ["-q", "test", "debian13", "--rerun-failed", "--accel", "tcg",
         "--store", f"file:{store.root}", "--history", str(history_path)]
    )  # fmt: skip

    assert status == 3  # the fake QEMU cannot boot: the rerun itself is what is checked
    with History.open(history_path) as history:
        [latest, _] = history.runs(last=2)
    assert latest.selection == "rerun-failed=r1"
    [run_dir] = (tmp_path / "runs").iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["selection"] == "rerun-failed=r1"
    assert run["selected"] == ["casenorm/x_fail"]
    assert "not rerun: cli_root/zpool_create/setup" in capsys.readouterr().out
