"""`gc` removes the temporary directories of VMs whose factory was killed, and only those.

A real QEMU (no guest: `-machine none`, paused) stands for a VM that is still running; its
directory must stay.  A directory too young to judge (its VM may be starting) stays too.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagefactory.build.leftovers import running_qemus, stale_vm_dirs
from imagefactory.run import require_tool
from imagefactory.vm.machine import VM_TEMP_PREFIX

LIVE = "t-gc-live"


@pytest.fixture
def live_qemu() -> Iterator[int]:
    qemu = require_tool("qemu-system-x86_64", package="qemu-system-x86")
    proc = subprocess.Popen(
        [qemu, "-name", LIVE, "-machine", "none", "-S", "-display", "none", "-nodefaults",
         "-monitor", "none", "-serial", "none"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while (proc.pid, LIVE) not in running_qemus():
            assert proc.poll() is None, "QEMU exited at once"
            assert time.monotonic() < deadline, "QEMU never showed up in /proc"
            time.sleep(0.1)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def vm_dir(root: Path, name: str, *, age: float) -> Path:
    path = root / f"{VM_TEMP_PREFIX}{name}-a1b2c3d4"
    path.mkdir()
    (path / "uefi-vars.fd").write_bytes(b"\0" * 16)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_only_old_directories_of_vms_without_a_qemu_go(tmp_path: Path, live_qemu: int) -> None:
    killed = vm_dir(tmp_path, "klab-golden-debian-20261122T071527-eef1f4", age=3600)
    running = vm_dir(tmp_path, LIVE, age=3600)
    starting = vm_dir(tmp_path, "t-gc-starting", age=5)
    other = tmp_path / "somebody-elses-dir"
    other.mkdir()

    assert stale_vm_dirs(dry_run=True, root=tmp_path) == [killed]
    assert killed.exists()

    assert stale_vm_dirs(root=tmp_path) == [killed]
    assert not killed.exists()
    assert running.exists() and starting.exists() and other.exists()
