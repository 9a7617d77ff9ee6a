"""Which process owns a build volume or clone, and whether that process is still alive.

`gc` must tell an abandoned build volume (its build was killed) from one a running build is
writing into, without any registry that a `kill -9` could leave stale.  An owner token names
the process by boot id, pid and the pid's start time, so a reused pid or a reboot never makes
a dead owner look alive.
"""

from __future__ import annotations

import os
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown-boot"


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def current_owner() -> str:
    """The owner token of this process: `<boot_id>:<pid>:<start_time>`."""
    pid = os.getpid()
    return f"{_boot_id()}:{pid}:{_start_time(pid) or '0'}"


def owner_alive(token: str) -> bool:
    """Whether the process named by an owner token still runs; malformed tokens are dead."""
    parts = token.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    boot_id, pid, start = parts
    if boot_id != _boot_id():
        return False
    return _start_time(int(pid)) == start


def pid_alive(pid: int) -> bool:
    """Whether a pid exists (for temp files, which carry only a pid)."""
    return pid > 0 and Path(f"/proc/{pid}").exists()
