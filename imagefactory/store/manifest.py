"""Atomic file writes and the files store's JSON manifests (its role markers).

A manifest is only ever replaced by `rename` of a fully written and fsynced temporary
file, so a reader or a crash sees the old manifest or the new one, never half of one.
Temporary files are hidden (`.<name>.tmp-<pid>-<random>`) and carry their writer's pid, so
`gc` can tell a crashed writer's leftovers from a live writer's work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = 1
TEMP_RE = re.compile(r"\.(?P<final>.+)\.tmp-(?P<pid>\d+)-[0-9a-f]{8}")


def temp_path(final: Path) -> Path:
    """A hidden sibling of `final` for writing it before renaming it into place."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: Mapping[str, Any], *, mode: int = 0o644) -> None:
    """Write `data` as JSON to `path` atomically (temp file, fsync, rename, fsync dir)."""
    tmp = temp_path(path)
    payload = json.dumps({"format": MANIFEST_FORMAT, **data}, indent=2, sort_keys=True) + "\n"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest's content, or None when there is no usable manifest: missing, a symlink
    (never followed: it could lead anywhere), not a regular file, or not a JSON object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, 1 << 20)
    finally:
        os.close(fd)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
