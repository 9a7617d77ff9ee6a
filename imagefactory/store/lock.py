"""A store-wide lock that never leaves a file behind and dies with its holder.

Publishing, retiring, cloning and gc each change several names; holding this lock while
they do means no other process ever sees their intermediate states, except after a crash,
which the next lock holder repairs.  `flock` is released by the kernel when the holder dies,
so a `kill -9` never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flocked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (a directory or a lock file, created if missing)."""
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
