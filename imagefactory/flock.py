"""Exclusive, crash-safe lock files shared by builds (one per golden) and the image cache.

`flock` is released by the kernel when its holder dies, so a `kill -9` never leaves
anything locked.  Holders may unlink their lock file on release (and `cache gc` removes old
ones), so a waiter can end up holding a file that is no longer at the path: after every
acquisition the file is checked to still be the one at the path, and locked again if not.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable, Iterable
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


def remove_unheld(paths: Iterable[Path], *, dry_run: bool = False) -> list[Path]:
    """Of `paths` (lock or lease files), remove those no process holds: a killed owner's.

    A held file stays; so does anything that is not this user's regular file (a symlink, a
    directory, another user's lease): the flock is the only proof a file is abandoned."""
    removed = []
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            removed.append(path)
            if not dry_run:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return removed
