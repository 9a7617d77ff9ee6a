"""A download's files on disk: the `.part` file, its validator sidecar, and small files
written so that a full disk leaves nothing behind (never a 0-byte `*.tmp`)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

from imagefactory.atomic import write_atomic
from imagefactory.fetch.errors import DiskFullError

DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def write_file(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (`imagefactory.atomic`); on failure (a full
    disk) nothing is left behind and the error says what ran out."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise DiskFullError(
                f"disk full while writing {path.name} in {path.parent}",
                hint="free space, run `imagefactory cache gc`, or choose --cache-dir",
            ) from exc
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_file(path, json.dumps(data).encode())


def remove_part(part: Path) -> None:
    """Remove a partial download and its validator sidecar."""
    part.unlink(missing_ok=True)
    sidecar(part).unlink(missing_ok=True)
