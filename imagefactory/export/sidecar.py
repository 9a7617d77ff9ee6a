"""What travels with every export: a provenance sidecar and a SHA256SUMS file.

The sidecar (`<export>.json`) says which golden the file came from (its store, name and
every provenance field the store recorded), the format, the size and the export's SHA-256,
so an image found on a cloud account months later can be traced to its build.

`SHA256SUMS` in the export's directory is the file `sha256sum -c` reads.  Several exports
may share a directory, so the file is updated, not overwritten: the lines of other files
are kept, this export's lines replaced, under a lock, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagefactory import flock
from imagefactory.atomic import write_atomic

SUMS_NAME = "SHA256SUMS"
_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)")


def sidecar_path(export: Path) -> Path:
    return export.with_name(export.name + ".json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def write_sidecar(path: Path, record: Mapping[str, Any]) -> None:
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def parse_sums(text: str) -> dict[str, str]:
    """`sha256sum` lines (text or binary mode) → {name: digest}; other lines are dropped."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line.rstrip("\r"))
        if match is not None:
            found[match.group(2)] = match.group(1)
    return found


def render_sums(sums: Mapping[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def update_sums(directory: Path, entries: Mapping[str, str]) -> Path:
    """Record `entries` (file name → SHA-256) in `directory/SHA256SUMS`, keeping the rest."""
    path = directory / SUMS_NAME
    # The lock is the file itself: flock.acquire follows it across the atomic replace
    # (a waiter that locked the replaced inode locks the new one), so nothing else is left
    # in the user's directory.
    fd = flock.acquire(path)
    assert fd is not None
    try:
        try:
            current = parse_sums(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            current = {}
        current.update(entries)
        write_atomic(path, render_sums(current).encode())
    finally:
        os.close(fd)
    return path
