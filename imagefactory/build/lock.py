"""One build per golden name at a time.

A second build of the same golden either waits for the first (default) or fails at once
naming the holder.  flock dies with its holder, so `kill -9` never leaves a golden locked;
the lock file is removed on release, and a stale file is simply re-locked by the next build.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from imagefactory.build.statedir import locks_dir
from imagefactory.errors import ImageFactoryError

log = structlog.get_logger(__name__)


class BuildLocked(ImageFactoryError):
    """Another build of the same golden holds the lock."""

    exit_status = 3


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def golden_lock(leaf: str, *, wait: bool = True, directory: Path | None = None) -> Iterator[None]:
    path = (directory or locks_dir()) / f"{leaf}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = _holder(path)
            if not wait:
                raise BuildLocked(
                    f"another build of {leaf} is running ({holder})",
                    hint="wait for it, or run without --no-wait to queue behind it",
                ) from None
            log.info("build.lock.waiting", golden=leaf, holder=holder)
            time.sleep(2)
            continue
        # The previous holder may have unlinked the file after we opened it: relock then.
        try:
            same = os.fstat(fd).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        break
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
