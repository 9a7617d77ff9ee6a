"""The test stage's small decisions: which distros, how many at once, what a clone needs."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import UsageError
from imagefactory.spec.loader import all_distro_names, load_distro
from imagefactory.store.base import Clone
from imagefactory.testrun.clone_steps import random_mac
from imagefactory.testrun.jobs import default_jobs, resolve_jobs
from imagefactory.testrun.kept import KeptClone, in_use
from imagefactory.testrun.release import BuildRecord, not_built_outcomes, source_for
from imagefactory.testrun.resolve import resolve_distros
from imagefactory.vm.qemu_args import MIB, VmConfig

GIB = 1024**3


def test_all_means_every_distro_and_aliases_are_not_run_twice() -> None:
    assert [r.spec.name for r in resolve_distros(["all"])] == all_distro_names()
    twice = resolve_distros(["debian13", "trixie", "debian"])
    assert [r.spec.name for r in twice] == ["debian13"]
    assert twice[0].lineage == "ztest"


def test_an_unknown_distro_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        resolve_distros(["plan9"])


def test_jobs_fit_memory_and_cores() -> None:
    specs = [r.spec for r in resolve_distros(["all"])]  # 4 GiB, 2 vCPUs each
    assert default_jobs(specs, memory=64 * GIB, cores=2) == 1
    assert default_jobs(specs, memory=64 * GIB, cores=32) == 5
    assert default_jobs(specs, memory=11 * GIB, cores=32) == 2  # 5 GiB per clone
    assert default_jobs(specs, memory=1 * GIB, cores=32) == 1  # never zero
    assert resolve_jobs(8, specs[:2]) == 2
    with pytest.raises(UsageError):
        resolve_jobs(0, specs)


def test_every_clone_gets_its_own_mac_in_qemus_range() -> None:
    macs = {random_mac() for _ in range(50)}
    assert len(macs) == 50
    assert all(re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", m) for m in macs)


def _kept(tmp_path: Path) -> KeptClone:
    clone = Clone(
        leaf="klab-ztest-debian",
        clone_id="c1",
        name="/store/klab-ztest-debian.clone-c1.qcow2",
        path=Path("/store/klab-ztest-debian.clone-c1.qcow2"),
        format="qcow2",
        origin="/store/klab-ztest-debian.qcow2",
        origin_build_id="b1",
        store="file:/store",
        owner="x:1:1",
    )
    config = VmConfig(
        name="klab-ztest-debian-test-c1",
        disk=clone.path,
        seed=tmp_path / "seed.iso",
        memory=4096 * MIB,
        mac="52:54:00:aa:bb:cc",
    )
    return KeptClone(
        distro="debian13",
        store="file:/store",
        clone=clone,
        config=config,
        ssh_key=tmp_path / "ssh" / "id_ed25519",
        user="debian",
        test_user="zfs",
        artifacts=tmp_path,
    )


def test_a_kept_clone_comes_with_a_command_that_boots_it_on_its_network(tmp_path: Path) -> None:
    kept = _kept(tmp_path)

    argv = kept.qemu_command()
    text = kept.instructions()

    drives = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-drive"]
    assert drives[0].startswith("file=/store/klab-ztest-debian.clone-c1.qcow2,format=qcow2,")
    assert len(drives) == 1, "the seed went with the run's .work directory"
    nic = argv[argv.index("-nic") + 1]
    assert "mac=52:54:00:aa:bb:cc" in nic and "hostfwd=tcp:127.0.0.1:2222-:22" in nic
    assert argv[argv.index("-m") + 1] == "4096"
    assert argv[argv.index("-serial") + 1] == "mon:stdio"
    assert f"ssh -i {tmp_path / 'ssh' / 'id_ed25519'} -p 2222" in text
    assert "debian@127.0.0.1" in text and "klab gc --store file:/store" in text
    assert "(then: sudo -iu zfs)" in text
    assert kept.write().read_text().startswith("kept the clone of debian13")
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi"


def test_the_kept_command_is_the_stages_machine_with_the_test_user_from_the_spec(
    tmp_path: Path,
) -> None:
    """The same builder as the boot (vm/qemu_args.py): machine and devices match build_argv."""
    from imagefactory.vm.qemu_args import Wiring, build_argv

    kept = _kept(tmp_path)
    kept = dataclasses.replace(kept, test_user="tester")
    wiring = Wiring(qmp_fd=3, status_fd=4, console_log=tmp_path / "console.log")
    booted = build_argv(dataclasses.replace(kept.config, ssh_port=2222, seed=None), wiring)
    printed = kept.qemu_command()

    def hardware(argv: list[str]) -> list[str]:
        return argv[argv.index("-drive") :]

    assert hardware(printed) == hardware(booted)
    assert printed[: printed.index("-no-user-config")] == booted[: booted.index("-no-user-config")]
    assert "(then: sudo -iu tester)" in kept.instructions()


def test_the_printed_command_line_is_one_qemu_accepts(tmp_path: Path) -> None:
    """QEMU parses it and opens the disk (paused with -S: nothing boots)."""
    disk = tmp_path / "clone.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    base = _kept(tmp_path)
    config = dataclasses.replace(base.config, disk=disk)
    kept = dataclasses.replace(
        base, clone=dataclasses.replace(base.clone, path=disk), config=config
    )
    argv = kept.qemu_command(ssh_port=0)
    qemu = subprocess.Popen(
        [*argv, "-S"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with contextlib.suppress(subprocess.TimeoutExpired):
            qemu.wait(timeout=3)
        assert qemu.returncode is None, qemu.communicate()[1]
    finally:
        qemu.kill()
        qemu.wait()


def test_a_clone_some_process_has_open_is_in_use(tmp_path: Path) -> None:
    kept = _kept(tmp_path)
    disk = tmp_path / "disk.qcow2"
    disk.write_bytes(b"")
    clone = dataclasses.replace(kept.clone, path=disk)

    assert not in_use(clone)
    with disk.open("rb"):
        assert in_use(clone)


def test_a_failed_rebuild_is_not_built_with_its_reason() -> None:
    outcomes = not_built_outcomes(
        [BuildRecord("debian13", True, 10.0), BuildRecord("centos9", False, 20.0, error="no net")]
    )
    assert list(outcomes) == ["centos9"]
    assert outcomes["centos9"].status == "not-built"
    assert outcomes["centos9"].message == "the rebuild failed: no net"


def test_bootstrap_is_used_only_where_a_spec_has_it() -> None:
    assert source_for(load_distro("debian13", lineage="ztest"), "bootstrap") == "bootstrap"
    assert source_for(load_distro("centos9", lineage="ztest"), "bootstrap") is None
    assert source_for(load_distro("centos9", lineage="ztest"), "cloud_image") == "cloud_image"


@pytest.mark.parametrize(
    "argv",
    [
        ["test", "debian13"],
        ["test", "debian13", "--suite", "quick", "--run", "a/b"],
        ["test", "debian13", "--rerun-failed", "--suite", "quick"],
        ["test", "nosuchdistro", "--suite", "quick"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_rerun_failed_without_history_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["test", "debian13", "--rerun-failed", "--history", str(tmp_path / "none.sqlite")]
    )
    assert status == 2
    assert "no test history" in capsys.readouterr().err


def test_the_gate_retries_once_by_default_and_klab_test_does_not() -> None:
    from imagefactory.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["rc"]).retries == 1
    assert parser.parse_args(["test", "debian13", "--suite", "quick"]).retries == 0
    assert parser.parse_args(["test", "debian13", "--run", "a", "--retries", "5"]).retries == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["test", "debian13", "--suite", "quick", "--retries", "6"], "6 is not between 0 and 5"),
        (["test", "debian13", "--suite", "quick", "--retries", "-1"], "-1 is not between"),
        (["rc", "--retries", "once"], "'once' is not a whole number"),
    ],
)
def test_retries_outside_0_to_5_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument --retries: {message}" in capsys.readouterr().err
