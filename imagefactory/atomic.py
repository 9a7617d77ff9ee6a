"""Replace a small file so that a reader, or a crash, sees the old content or the new one.

Every record the factory keeps on disk (store manifests, cache fingerprints and index
entries, build markers, a download's validators) is written the same way: the bytes go to a
temporary file in the same directory (so the rename cannot cross filesystems), the file is
fsynced, renamed over the target, and the directory is fsynced so the rename itself is on
disk.  Without both fsyncs a power cut can leave an empty or absent file under the final
name even though the rename "happened"; with them the worst case is the old content.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a rename, an unlink) durable."""
    _fsync(directory, os.O_DIRECTORY)


def fsync_file(path: Path) -> None:
    """Make a file's data durable without following a symlink put in its place."""
    _fsync(path, os.O_NOFOLLOW)


def temp_sibling(path: Path) -> Path:
    """A hidden, unique name next to `path`: concurrent writers never share one."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def write_atomic(
    path: Path, data: bytes, *, mode: int | None = None, temp: Path | None = None
) -> None:
    """Replace `path` with `data`: written to `temp` (by default `temp_sibling(path)`; it
    must be on the same filesystem), fsynced, renamed over `path`, directory fsynced.

    `mode` None gives the file the permissions a new file gets (the umask applies); a mode
    is set before the rename, so the file never appears under its name with other ones.  On
    any failure the temporary file is removed and `path` keeps its old content.
    """
    temp = temp or temp_sibling(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o666 if mode is None else 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            temp.chmod(mode)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
