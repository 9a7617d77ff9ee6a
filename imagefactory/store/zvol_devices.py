"""A zvol's device nodes: waiting for udev to make them, to resize them, to drop them.

ZFS creates a zvol at once, but its `/dev/zvol/<name>` link (and the `-partN` links of its
partitions) come from udev (60-zvol.rules) some time later; a size change reaches the
block device later still; and while udev's blkid has a new zvol open, destroying it fails
as busy.  Everything the zfs store does with device nodes goes through here, so the store's
operations read as ZFS operations.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from imagefactory.log import get_logger
from imagefactory.run import run
from imagefactory.store.base import StoreError
from imagefactory.store.lzc import ZfsBusy

log = get_logger(__name__)

DEV_ZVOL = Path("/dev/zvol")
_T = TypeVar("_T")


def device_path(name: str) -> Path:
    """Where udev links the zvol `name` (pool/.../leaf)."""
    return DEV_ZVOL / name


def settle() -> None:
    if shutil.which("udevadm"):
        run(["udevadm", "settle", "--timeout=30"], check=False)


def _trigger() -> None:
    """Replay `add` for zvols (zd*) only: on a lab host, every other disk must not have its
    udev rules run again because one zvol's link is late."""
    if shutil.which("udevadm"):
        run(
            ["udevadm", "trigger", "--subsystem-match=block", "--sysname-match=zd*",
             "--action=add"],
            check=False,
        )  # fmt: skip
        settle()


def _device_size(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def wait_for(name: str, size: int | None, timeout: float) -> Path:
    """Wait for `/dev/zvol/<name>` (udev creates it after the zvol appears) and, if given,
    for the device to report `size` (it lags after a volsize change)."""
    path = device_path(name)
    start = time.monotonic()
    settle()
    triggered = False
    while True:
        current = _device_size(path)
        if current is not None and (size is None or current == size):
            return path
        waited = time.monotonic() - start
        if waited > timeout:
            raise StoreError(
                f"{path} did not appear (or has the wrong size) after {waited:.0f}s",
                hint="zvol links come from udev (60-zvol.rules): is udev running?",
            )
        if not triggered and waited > 5:
            _trigger()
            triggered = True
        time.sleep(0.1)


def wait_gone(name: str, timeout: float) -> None:
    path = device_path(name)
    deadline = time.monotonic() + timeout
    settle()
    while path.exists() or path.is_symlink():
        if time.monotonic() > deadline:
            raise StoreError(f"{path} still exists after its zvol was destroyed")
        time.sleep(0.1)


def retry_while_busy(what: Callable[[], _T]) -> _T:
    """Retry an operation that fails while udev (blkid) still has a new zvol open."""
    for attempt in range(20):
        try:
            return what()
        except ZfsBusy:
            if attempt == 19:
                raise
            settle()
            time.sleep(0.25 * (attempt + 1))
    raise AssertionError("unreachable")


def refresh_partition_links(name: str, timeout: float) -> None:
    """Make udev name a renamed zvol's partitions anew.

    ZFS renames the zvol's own `/dev/zvol` link (it emits a change event for the whole
    disk), but not those of its partitions: `<old name>-part1` stays behind, pointing at
    the renamed zvol's partition - after a publish, a link named like the build volume
    leads into the golden.  Replaying a change event for the partitions makes udev name
    them anew and drop the stale links.  Best effort: the rename itself has happened.
    """
    if shutil.which("udevadm") is None:
        return
    try:
        device = wait_for(name, None, timeout).resolve()
    except StoreError as exc:
        log.warning("store.links.not_refreshed", name=name, error=str(exc))
        return
    sys_dir = Path("/sys/class/block") / device.name
    try:
        partitions = sorted(
            entry.name
            for entry in sys_dir.iterdir()
            if entry.name.startswith(device.name) and (entry / "partition").exists()
        )
    except OSError:
        partitions = []
    if partitions:
        run(
            ["udevadm", "trigger", "--action=change", *(f"/dev/{p}" for p in partitions)],
            check=False,
        )
        settle()
