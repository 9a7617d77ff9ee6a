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
from imagefactory.testrun.inventory import keep_inventory
from imagefactory.testrun.kept import forgotten_clones, remove_forgotten_clones
from imagefactory.testrun.outcome import DistroStatus
from imagefactory.testrun.resolve import plan_distros
from imagefactory.testrun.selection import parse_selection
from imagefactory.testrun.stage import Stage, StageOptions, run_stage
from imagefactory.vm.payload import unpack
from tests.fixtures.stores import make_raw_image

LEAF = "klab-ztest-debian"
MIB = 1024 * 1024


def publish_golden(
    store: FileStore,
    tmp_path: Path,
    *,
    leaf: str = LEAF,
    distro: str = "debian13",
    inventory: str | None = None,
) -> None:
    image = make_raw_image(tmp_path / f"{leaf}.raw", 1, size=64 * MIB)
    volume = store.create_build_volume(leaf, "b1", 64 * MIB)
    volume = store.write_image(volume, image, source_format="raw")
    store.publish(
        volume,
        Provenance(
            distro=distro,
            lineage="ztest",
            build_id="b1",
            zfs_version="2.3.9-1",
            suite_version="2.3.9-0+deb13u1",
            inventory_digest=inventory,
        ),
    )


def suite_inventory(tests: list[str], state: Path, version: str = "2.3.9-0+deb13u1") -> str:
    """An inventory as a golden's build keeps it (in `state`); its digest."""
    document = {
        "format": 1,
        "suite_version": version,
        "runfiles": ["common.run", "linux.run"],
        "tests": {
            t: {
                "on_disk": True,
                "listed": {
                    "common.run": {
                        "section": f"tests/functional/{t.rsplit('/', 1)[0]}",
                        "tags": ["functional", t.split("/")[0]],
                    }
                },
            }
            for t in tests
        },
    }
    return keep_inventory(json.dumps(document).encode(), state)


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
    specs = [load_distro("debian13", lineage="ztest"), load_distro("centos9", lineage="ztest")]

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
    assert {r.lineage for r in rows} == {"ztest"}  # timing trends compare within a lineage
    assert "## Timing" in (result.run_dir / "summary.md").read_text()


def test_keep_failed_keeps_the_clone_and_says_how_to_reach_it(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = fake_qemu(tmp_path / "bin", "exit 1")
    specs = [load_distro("debian13", lineage="ztest")]

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
        "IMAGEFACTORY_STATE": str(tmp_path / "state"),
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
    specs = [load_distro("debian13", lineage="ztest")]
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
    specs = [load_distro("debian13", lineage="ztest")]

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


ZPOOL_CREATE = "cli_root/zpool_create/zpool_create_001_pos"


def test_a_name_no_distro_knows_exits_2_with_suggestions_and_makes_no_clone(
    tmp_path: Path, state: Path
) -> None:
    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path, inventory=suite_inventory([ZPOOL_CREATE], state))
    started = tmp_path / "qemu-started"
    bin_dir = fake_qemu(tmp_path / "bin", f"touch {started}; exit 1").parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "KLAB_LOG_DIR": str(tmp_path / "runs"),
    }

    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "test", "debian13", "--run",
         "cli_root/zpool_create_01_pos", "--accel", "tcg", "--store", f"file:{store.root}"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert proc.returncode == 2, proc.stderr
    assert "--run cli_root/zpool_create_01_pos: no test of that name in debian13" in proc.stderr
    assert f"did you mean {ZPOOL_CREATE}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert store.list_clones() == []
    assert not started.exists(), "QEMU must not start"
    assert not (tmp_path / "runs").exists()


def test_a_group_resolved_on_the_host_reaches_the_guest_as_full_paths(
    tmp_path: Path, state: Path
) -> None:
    store = FileStore(tmp_path / "store")
    tests = [ZPOOL_CREATE, "cli_root/zpool_create/zpool_create_002_pos", "atime/atime_001_pos"]
    publish_golden(store, tmp_path, inventory=suite_inventory(tests, state))
    specs = [load_distro("debian13", lineage="ztest")]
    selection = parse_selection(group=["zpool_create_001_pos,atime"])
    plan = plan_distros(specs, selection, store)
    stage = Stage(specs, selection, options(tmp_path, Path("qemu"), retries=2), store, plan=plan)
    clone = store.clone(LEAF)
    try:
        boot = stage.prepare(specs[0], clone, tmp_path / "work")
    finally:
        store.destroy_clone(clone)

    [hook] = boot.plan.hooks
    inputs = unpack(hook.content)
    assert inputs["tests.txt"] == f"{ZPOOL_CREATE}\natime/atime_001_pos\n".encode()
    assert "absent.txt" not in inputs
    assert "KLAB_TEST_GROUPS" not in hook.env
    assert hook.env["KLAB_TEST_RETRIES"] == "2"
    assert plan.warnings == []


def test_a_distro_whose_suite_lacks_every_test_is_absent_without_a_boot(
    tmp_path: Path, state: Path
) -> None:
    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path, inventory=suite_inventory([ZPOOL_CREATE], state))
    centos = load_distro("centos9", lineage="ztest")
    older = suite_inventory(["atime/atime_001_pos"], state, version="2.2.9-1")
    publish_golden(store, tmp_path, leaf=centos.golden_leaf, distro="centos9", inventory=older)
    calls = tmp_path / "qemu-calls"
    qemu = fake_qemu(tmp_path / "bin", f"echo started >> {calls}; exit 1")

    result = run_stage(
        [load_distro("debian13", lineage="ztest"), centos],
        parse_selection(run=["zpool_create_001_pos"]),
        options(tmp_path, qemu),
        store=store,
    )

    debian, centos_outcome = result.outcomes
    assert debian.status is DistroStatus.INFRA_ERROR  # booted (the fake QEMU cannot)
    assert centos_outcome.status is DistroStatus.PASSED
    assert [(t.name, t.result, t.note) for t in centos_outcome.tests] == [
        ("zpool_create_001_pos", "ABSENT", "absent in zfs-tests 2.2.9-1")
    ]
    assert "no clone booted" in (centos_outcome.message or "")
    assert calls.read_text().count("started") == 1  # only debian13's clone booted
    assert store.list_clones() == []


def test_a_golden_without_an_inventory_is_resolved_in_its_clone_with_a_warning(
    tmp_path: Path, state: Path, store: FileStore
) -> None:
    specs = [load_distro("debian13", lineage="ztest")]
    selection = parse_selection(run=["no_such_test"])
    lines: list[str] = []
    qemu = fake_qemu(tmp_path / "bin", "exit 1")

    result = run_stage(specs, selection, options(tmp_path, qemu), store=store, report=lines.append)

    warning = next(line for line in lines if line.startswith("warning: "))
    assert "debian13: the golden (build b1) records no suite inventory" in warning
    assert "make golden-ztest DISTRO=debian13" in warning
    assert result.outcomes[0].status is DistroStatus.INFRA_ERROR  # it booted, as before


def test_rc_refuses_a_mistyped_name_before_rebuilding_anything(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from imagefactory.cli import main
    from imagefactory.testrun import release

    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path, inventory=suite_inventory([ZPOOL_CREATE], state))

    def rebuild(*args: object, **kwargs: object) -> None:
        # A spy, not a stand-in: a real rebuild is an hour of TCG; reaching it is the bug.
        raise AssertionError("the goldens were rebuilt before the names were checked")

    monkeypatch.setattr(release, "rebuild_goldens", rebuild)
    monkeypatch.setenv("KLAB_LOG_DIR", str(tmp_path / "runs"))

    status = main(
        ["rc", "--distros", "debian13", "--run", "zpool_create_01_pos",
         "--store", f"file:{store.root}", "--history", str(tmp_path / "history.sqlite")]
    )  # fmt: skip

    assert status == 2
    err = capsys.readouterr().err
    assert "--run zpool_create_01_pos: no test of that name in debian13" in err
    assert f"did you mean {ZPOOL_CREATE}" in err
