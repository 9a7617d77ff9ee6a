"""A VM's private temporary directory, made so that `gc` can prove whose it is and whether
it is still in use.

`<tmp>/imagefactory-vm-<vm name>-<random>` is created 0700 by `mkdtemp`, then locked
(an exclusive flock on the directory itself) and only then given its record,
`imagefactory-vm.json`: the user, the VM and the disk it boots (which says which store
the VM belongs to).  The lock is held by the factory and by the QEMU it starts (the
descriptor is passed to QEMU), so the directory is in use as long as either runs; the
kernel drops the lock when both are gone, `kill -9` included.  A flock belongs to the
directory, so its answer is the same from every PID namespace, unlike a pid.

`gc` removes a directory only when it is a real directory owned by this user, unlocked,
with a record naming this user and a disk of the store being collected.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VM_TEMP_PREFIX = "imagefactory-vm-"
RECORD = "imagefactory-vm.json"
_MAX_RECORD = 64 * 1024


@dataclass
class VmTempDir:
    """An open, locked VM temporary directory; `close` removes it and drops the lock."""

    path: Path
    fd: int

    @classmethod
    def create(cls, vm_name: str, disk: Path) -> VmTempDir:
        path = Path(tempfile.mkdtemp(prefix=f"{VM_TEMP_PREFIX}{vm_name}-"))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            record = {
                "format": 1,
                "uid": os.geteuid(),
                "vm": vm_name,
                "disk": str(disk),
                "created_at": time.time(),
            }
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            out = os.open(RECORD, flags, 0o600, dir_fd=fd)
            with os.fdopen(out, "w") as f:
                json.dump(record, f)
        except BaseException:
            os.close(fd)
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls(path, fd)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def read_record(dir_fd: int) -> dict[str, Any] | None:
    """The directory's record if it is one this user's factory wrote, else None."""
    try:
        fd = os.open(
            RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        raw = os.read(fd, _MAX_RECORD + 1)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("uid") != os.geteuid()
        or not isinstance(data.get("disk"), str)
        or len(raw) > _MAX_RECORD
    ):
        return None
    return data


def stale_vm_dirs(
    belongs: Callable[[Path], bool], *, root: Path | None = None, dry_run: bool = False
) -> list[Path]:
    """This user's VM directories that nothing holds and whose disk `belongs(path)` to
    the store being collected, removed (see the module docstring)."""
    base = root if root is not None else Path(tempfile.gettempdir())
    removed = []
    try:
        entries = sorted(os.listdir(base))  # noqa: PTH208 - names, not paths
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith(VM_TEMP_PREFIX):
            continue
        path = base / entry
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # a symlink, a file, gone
        try:
            if os.fstat(fd).st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its factory or its QEMU still runs
            record = read_record(fd)
            if record is None or not belongs(Path(record["disk"])):
                continue
            removed.append(path)
            if not dry_run:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
    return removed
