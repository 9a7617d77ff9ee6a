"""Machine against real QEMU, with boot-sector guests that take a second, not a minute."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.errors import InfrastructureError
from imagefactory.vm.firmware import find_uefi_firmware
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.machine import Machine, MachineExited, VmError
from imagefactory.vm.provision import HookFailed, provision
from imagefactory.vm.qemu_args import VmConfig
from tests.integration.vm.leftovers import Snapshot, alive
from tests.integration.vm.payloads import MARKER, halt_disk, poweroff_disk

pytestmark = [
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 not installed"
    ),
    pytest.mark.timeout(120),
]
MIB = 1024 * 1024


@pytest.fixture
def clean() -> Iterator[Snapshot]:
    """Every test here ends with the leftover check of acceptance (d)."""
    yield Snapshot.take()


def tiny(disk: Path, name: str, **overrides: object) -> VmConfig:
    values: dict[str, object] = {
        "name": name,
        "disk": disk,
        "disk_format": "raw",
        "memory": 256 * MIB,
        "cpus": 1,
    }
    values.update(overrides)
    return VmConfig(**values)  # type: ignore[arg-type]


def test_a_guest_that_powers_itself_off_ends_cleanly(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(poweroff_disk(tmp_path), "t-poweroff")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            info = await machine.wait_shutdown(60)
            assert info is not None and info.clean, info
            assert info.guest_initiated is True
        return machine

    machine = asyncio.run(scenario())
    assert MARKER in machine.console_log.read_bytes()
    assert [e.name for e in machine.events][-1] == "SHUTDOWN"
    clean.assert_clean("t-poweroff", machine.pid)


def test_powerdown_quits_a_guest_that_ignores_the_power_button(
    tmp_path: Path, clean: Snapshot
) -> None:
    config = tiny(halt_disk(tmp_path), "t-ignore")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            assert await machine.wait_shutdown(0.5) is None
            info = await machine.powerdown(grace=1)
            assert (info.reason, info.killed, info.exit_code) == ("host-qmp-quit", False, 0)
            assert "POWERDOWN" in [e.name for e in machine.events]
        return machine

    machine = asyncio.run(scenario())
    clean.assert_clean("t-ignore", machine.pid)


def test_kill_ends_a_running_vm(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-kill")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            info = await machine.kill()
            assert info.killed and info.exit_code == -signal.SIGKILL
        return machine

    machine = asyncio.run(scenario())
    clean.assert_clean("t-kill", machine.pid)


def test_a_wait_ends_as_soon_as_qemu_dies(tmp_path: Path, clean: Snapshot) -> None:
    """A dead QEMU must never hang the host: the race ends in well under its timeout."""
    config = tiny(halt_disk(tmp_path), "t-dies")

    async def scenario() -> tuple[Machine, float]:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            assert machine.pid is not None
            loop = asyncio.get_running_loop()
            loop.call_later(0.5, os.kill, machine.pid, signal.SIGKILL)
            start = time.monotonic()
            with pytest.raises(MachineExited, match="while waiting for something that never"):
                await machine.race(asyncio.Event().wait(), 60, what="something that never comes")
            return machine, time.monotonic() - start

    machine, waited = asyncio.run(scenario())
    assert waited < 10
    clean.assert_clean("t-dies", machine.pid)


def test_a_race_times_out(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-timeout")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            with pytest.raises(TimeoutError, match="a status line did not happen within"):
                await machine.race(machine.status_reader.readline(), 0.5, what="a status line")
            assert machine.running
        return machine

    machine = asyncio.run(scenario())
    clean.assert_clean("t-timeout", machine.pid)


def test_nothing_survives_an_exception_in_the_body(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-exception")
    machines: list[Machine] = []

    async def scenario() -> None:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            machines.append(machine)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(scenario())
    clean.assert_clean("t-exception", machines[0].pid)


def test_nothing_survives_cancellation(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-cancel")
    machines: list[Machine] = []

    async def body() -> None:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            machines.append(machine)
            await asyncio.sleep(3600)

    async def scenario() -> None:
        task = asyncio.create_task(body())
        while not machines or not machines[0].running:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    clean.assert_clean("t-cancel", machines[0].pid)


def test_qemu_that_fails_to_start_is_reported_with_its_log(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-broken", extra_args=("-device", "no-such-device"))

    async def scenario() -> None:
        async with Machine(config, log_dir=tmp_path / "logs"):
            pass

    with pytest.raises(MachineExited, match="waiting for the monitor"):
        asyncio.run(scenario())
    assert "no-such-device" in (tmp_path / "logs" / "qemu.log").read_text()
    clean.assert_clean("t-broken", None)


def test_uefi_uses_a_private_copy_of_the_variable_store(tmp_path: Path, clean: Snapshot) -> None:
    try:
        find_uefi_firmware("q35")
    except InfrastructureError:
        pytest.skip("no OVMF on this host")
    config = tiny(halt_disk(tmp_path), "t-uefi", firmware="uefi")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            assert machine.temp_dir is not None
            assert (machine.temp_dir / "uefi-vars.fd").stat().st_size > 0
            await asyncio.sleep(1)
            assert machine.running
        return machine

    machine = asyncio.run(scenario())
    clean.assert_clean("t-uefi", machine.pid)


def test_provision_stops_a_guest_that_never_reports(tmp_path: Path, clean: Snapshot) -> None:
    """No runner in the guest: the boot timeout ends the VM, and the result says so."""
    config = tiny(halt_disk(tmp_path), "t-silent", boot_timeout=2.0)
    plan = HookPlan.of([Hook("10-a.sh", b"true\n", 5)])
    result = provision(config, plan, log_dir=tmp_path / "logs", stop_grace=1)
    assert result.outcome == "error" and "did not finish within 2s" in result.message
    assert [h.state for h in result.hooks] == ["not-run"]
    assert result.shutdown is not None and result.shutdown.reason == "host-qmp-quit"
    assert not result.ok
    clean.assert_clean("t-silent", None)


def test_provision_reports_a_guest_that_powers_off_without_running_hooks(
    tmp_path: Path, clean: Snapshot
) -> None:
    config = tiny(poweroff_disk(tmp_path), "t-early-off", boot_timeout=60.0)
    plan = HookPlan.of([Hook("10-a.sh", b"true\n", 5)])
    result = provision(config, plan, log_dir=tmp_path / "logs")
    assert result.outcome == "error"
    assert "stopped before the hooks finished" in result.message
    with pytest.raises(HookFailed, match="stopped before the hooks finished"):
        result.raise_for_failure()
    clean.assert_clean("t-early-off", None)


CHILD = textwrap.dedent(
    """
    import asyncio, faulthandler, signal, sys
    from pathlib import Path
    from imagefactory.vm.machine import Machine
    from imagefactory.vm.qemu_args import VmConfig

    async def main() -> None:
        config = VmConfig(name=sys.argv[3], disk=Path(sys.argv[1]), disk_format="raw",
                          memory=256 * 1024 * 1024, cpus=1)
        async with Machine(config, log_dir=Path(sys.argv[2])) as machine:
            print("QEMU-PID", machine.pid, machine.temp_dir, flush=True)
            await asyncio.sleep(3600)

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks where it hangs
    # Ctrl-C as at a terminal: a test run started in the background by a script inherits
    # SIGINT ignored (POSIX shells do that to background jobs), and asyncio then leaves it so.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    asyncio.run(main())
    """
)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    """Child factories started by a test; killed at teardown even if the test failed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def start_child(
    tmp_path: Path, name: str, started: list[subprocess.Popen[str]]
) -> tuple[subprocess.Popen[str], int, Path]:
    """A factory process with a running VM: (the process, QEMU's pid, the VM's temp dir)."""
    with (tmp_path / "child.err").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(halt_disk(tmp_path)), str(tmp_path / "logs"), name],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
        )
    started.append(proc)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("QEMU-PID "):
            _, pid, temp_dir = line.split()
            return proc, int(pid), Path(temp_dir)
    raise AssertionError(f"the child exited {proc.wait()} without starting a VM")


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_stops_qemu_and_cleans_up(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    proc, qemu_pid, temp_dir = start_child(tmp_path, "t-sigint", children)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack to stderr
        time.sleep(2)
        raise AssertionError(
            "the factory did not exit within 60 s of Ctrl-C; its stderr:\n"
            + (tmp_path / "child.err").read_text()[-8000:]
        ) from None
    assert wait_gone(qemu_pid, 10)
    assert not temp_dir.exists()


def test_qemu_dies_with_a_killed_factory(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    """SIGKILL skips every cleanup in Python; the parent-death signal still stops QEMU."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    proc, qemu_pid, temp_dir = start_child(tmp_path, "t-sigkill", children)
    proc.kill()
    proc.wait(timeout=30)
    assert wait_gone(qemu_pid, 10)
    # Python had no chance to remove its temporary directory: that is the one leftover
    # (`gc` removes such directories once they are old; tests/integration/vm/test_gc_vm_dirs.py).
    assert temp_dir.is_dir()
    shutil.rmtree(temp_dir)


def test_a_second_boot_of_one_machine_is_refused(tmp_path: Path, clean: Snapshot) -> None:
    config = tiny(halt_disk(tmp_path), "t-twice")

    async def scenario() -> Machine:
        async with Machine(config, log_dir=tmp_path / "logs") as machine:
            with pytest.raises(VmError, match="already booted"):
                await machine.boot()
        return machine

    machine = asyncio.run(scenario())
    clean.assert_clean("t-twice", machine.pid)
