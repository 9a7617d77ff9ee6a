"""Leftovers of crashed builds outside the store: orphaned QEMU processes and stale locks.
(The temporary directories of VMs whose factory was killed are `vm.tempdir`'s.)

QEMU is started under `setpriv --pdeathsig KILL`, so it normally dies with its build;
this is the backstop for hosts without setpriv or QEMUs started by an older version.
A QEMU is ours when it runs as this user, its `-name` is a golden build's (`klab-...`),
and it is orphaned when its parent is gone (re-parented to init).  In another PID
namespace none of this is visible, and nothing is killed.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from imagefactory.builder.statedir import locks_dir
from imagefactory.flock import remove_unheld

QEMU_BINARIES = ("qemu-system-x86_64", "qemu-system-x86_64-microvm", "qemu-kvm")


@dataclass(frozen=True)
class OrphanQemu:
    pid: int
    name: str


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def running_qemus() -> list[tuple[int, str]]:
    """(pid, VM name) of every QEMU on the host that was given a `-name`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = _cmdline(pid)
        if not argv or Path(argv[0]).name not in QEMU_BINARIES or "-name" not in argv:
            continue
        index = argv.index("-name") + 1
        if index < len(argv):
            found.append((pid, argv[index].split(",")[0]))
    return found


def _mine(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}").stat().st_uid == os.geteuid()
    except OSError:
        return False


def orphaned_build_qemus() -> list[OrphanQemu]:
    return [
        OrphanQemu(pid, name)
        for pid, name in running_qemus()
        if name.startswith("klab-") and _ppid(pid) == 1 and _mine(pid)
    ]


def kill_orphans(*, dry_run: bool = False) -> list[OrphanQemu]:
    orphans = orphaned_build_qemus()
    if not dry_run:
        for orphan in orphans:
            try:
                os.kill(orphan.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
    return orphans


def stale_locks(*, dry_run: bool = False) -> list[Path]:
    """Lock files nobody holds (a killed build's); held ones are left alone."""
    return remove_unheld(sorted(locks_dir().glob("*.lock")), dry_run=dry_run)
