"""Which process owns a build volume, a clone or a temporary file, and whether it still runs.

`gc` must tell an abandoned build volume (its build was killed) from one a running build is
writing into.  Liveness rests on a lock, never on a pid: a process that owns something
holds an exclusive flock on its lease file, `<leases dir>/<token>.lease`, for its whole
life, and its owner token names that file.  The kernel drops the flock when the process
dies (`kill -9` included), and a flock belongs to the file, so every process on the host,
in any PID namespace (a container, `unshare --pid`), sees the same answer -- where a pid
read in another namespace names nothing, or another process.

A lease file is published under its final name only once it is locked (it is created
under a temporary name first), so a lease that is visible and unlocked is a dead one.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import tempfile
import threading
from pathlib import Path

from imagefactory.flock import remove_unheld

LEASE_PREFIX = "lease:"
_TOKEN = re.compile(r"lease:(?P<id>[0-9a-f]{32})")
_LEASE_FILE = re.compile(r"[0-9a-f]{32}\.lease")
_SHARED_DIRS = (Path("/run/lock"),)
_DIR_NAME = "imagefactory-leases"


def _safe_shared_dir(path: Path) -> bool:
    """A directory every user may create leases in, that nobody else can tamper with:
    a real directory owned by root or by us, sticky if others may write to it."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, os.geteuid()):
        return False
    return not (st.st_mode & 0o002) or bool(st.st_mode & stat.S_ISVTX)


def leases_dir() -> Path:
    """`/run/lock/imagefactory-leases` (a tmpfs: leases do not outlive a boot), else the
    same under the temporary directory; created world-writable and sticky, like /tmp, so
    that every user's processes meet in one place."""
    parents = [p for p in _SHARED_DIRS if os.access(p, os.W_OK | os.X_OK)]
    parents.append(Path(tempfile.gettempdir()))
    for parent in parents:
        path = parent / _DIR_NAME
        if not path.exists():
            # Made under another name and renamed into place, so that nobody ever sees it
            # before it is world-writable and sticky.
            staging = parent / f".{_DIR_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
            with contextlib.suppress(OSError):
                staging.mkdir(mode=0o700)
                staging.chmod(0o1777)
                try:
                    staging.rename(path)
                except OSError:
                    staging.rmdir()  # another process made it first
        if _safe_shared_dir(path):
            return path
    raise PermissionError(errno.EACCES, "no safe directory for lease files", str(path))


class _Held:
    """This process's lease: its token and the descriptor holding the flock."""

    pid: int | None = None
    token: str | None = None
    fd: int | None = None


_held = _Held()
_lock = threading.Lock()


def _drop_inherited() -> None:
    """In a forked child: the parent's lease is the parent's; the child makes its own."""
    if _held.fd is not None:
        with contextlib.suppress(OSError):
            os.close(_held.fd)
    _held.pid = _held.token = _held.fd = None


os.register_at_fork(after_in_child=_drop_inherited)


def _new_lease() -> tuple[str, int]:
    directory = leases_dir()
    ident = secrets.token_hex(16)
    staging = directory / f".{ident}.tmp"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        staging.rename(directory / f"{ident}.lease")
    except BaseException:
        os.close(fd)
        staging.unlink(missing_ok=True)
        raise
    return f"{LEASE_PREFIX}{ident}", fd


def current_owner() -> str:
    """This process's owner token (`lease:<32 hex>`); its lease is held until exit."""
    with _lock:
        if _held.pid != os.getpid() or _held.token is None:
            _held.token, _held.fd = _new_lease()
            _held.pid = os.getpid()
        return _held.token


@atexit.register
def _release_at_exit() -> None:
    """A lease file that is gone reads as dead, as an unlocked one does: a process that
    exits normally removes its own, so only killed processes leave theirs to `gc`."""
    if _held.pid == os.getpid() and _held.token is not None:
        path = lease_path(_held.token)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()


def lease_path(token: str) -> Path | None:
    """The lease file an owner token names, or None for anything but a well-formed token
    (tokens are read from manifests and zfs properties: never trusted as paths)."""
    match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
    return None if match is None else leases_dir() / f"{match['id']}.lease"


def _held_by_someone(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False
    finally:
        os.close(fd)


def owner_alive(token: str) -> bool:
    """Whether the process named by an owner token still runs (its lease is locked).
    A malformed token, or one from before leases (a pid), counts as dead."""
    path = lease_path(token)
    return path is not None and _held_by_someone(path)


def remove_dead_leases(*, dry_run: bool = False) -> list[Path]:
    """This user's lease files whose process is gone (for `gc`); held ones stay."""
    directory = leases_dir()
    names = sorted(os.listdir(directory))  # noqa: PTH208 - names, not paths
    paths = [directory / n for n in names if _LEASE_FILE.fullmatch(n)]
    return remove_unheld(paths, dry_run=dry_run)
