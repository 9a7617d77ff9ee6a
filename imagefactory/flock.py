"""Exclusive, crash-safe lock files shared by builds (one per golden) and the image cache.

`flock` is released by the kernel when its holder dies, so a `kill -9` never leaves
anything locked.  Holders may unlink their lock file on release (and `cache gc` removes old
ones), so a waiter can end up holding a file that is no longer at the path: after every
acquisition the file is checked to still be the one at the path, and locked again if not.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def acquire(
    path: Path, *, wait: bool = True, on_busy: Callable[[], None] | None = None
) -> int | None:
    """A descriptor holding an exclusive flock on the file now at `path` (created if missing).

    Without `wait`, None when another process holds it.  `on_busy` runs each time the lock
    is found held, before waiting (to say who is being waited for).  Close the descriptor
    to release.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                return None
            if on_busy is not None:
                on_busy()
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _still_at(fd, path):
            return fd
        os.close(fd)
