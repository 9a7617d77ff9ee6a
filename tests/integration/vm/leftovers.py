"""Acceptance (d): after a VM, no QEMU process, socket or temporary file of ours remains.

Other QEMUs may run on the same host (parallel builds, other test sessions), so the checks
look only at what this test process started: its children, its open sockets, and the
Machine's own temporary directory and pid.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


def socket_fds() -> set[str]:
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def qemu_children() -> list[int]:
    """Processes whose parent is this test process and whose command is QEMU."""
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me and "qemu" in comm:
            pids.append(int(entry.name))
    return pids


def vm_temp_dirs(name: str) -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob(f"imagefactory-vm-{name}-*"))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class Snapshot:
    """What was there before the VM started, so the check only sees what the VM left."""

    sockets: set[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(socket_fds())

    def assert_clean(self, name: str, pid: int | None) -> None:
        if pid is not None:
            assert not alive(pid), f"QEMU pid {pid} is still running"
        assert qemu_children() == [], "a QEMU child process survived"
        leaked = socket_fds() - self.sockets
        assert not leaked, f"sockets left open: {leaked}"
        assert vm_temp_dirs(name) == [], "the VM's temporary directory survived"
