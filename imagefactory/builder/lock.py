"""One build per golden name at a time.

A second build of the same golden either waits for the first (default) or fails at once
naming the holder.  flock dies with its holder, so `kill -9` never leaves a golden locked;
the lock file is removed on release, and a stale file is simply re-locked by the next build.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from imagefactory.builder.statedir import locks_dir
from imagefactory.errors import InfrastructureError
from imagefactory.flock import acquire
from imagefactory.store.names import check_leaf

log = structlog.get_logger(__name__)


class BuildLocked(InfrastructureError):
    """Another build of the same golden holds the lock."""


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


@contextmanager
def golden_lock(leaf: str, *, wait: bool = True, directory: Path | None = None) -> Iterator[None]:
    path = (directory or locks_dir()) / f"{check_leaf(leaf)}.lock"

    def waiting() -> None:
        log.info("build.lock.waiting", golden=leaf, holder=_holder(path))

    fd = acquire(path, wait=wait, on_busy=waiting)
    if fd is None:
        raise BuildLocked(
            f"another build of {leaf} is running ({_holder(path)})",
            hint="wait for it, or run without --no-wait to queue behind it",
        )
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
