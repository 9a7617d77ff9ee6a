"""Hashing helpers shared by the downloader and the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from imagefactory.spec.digest import Algorithm, Digest


class Hasher(Protocol):
    """The part of a hashlib object we use (hashlib's own type is private)."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


def new_hasher(algorithm: Algorithm) -> Hasher:
    return hashlib.new(algorithm)


def hash_file(path: Path, algorithm: Algorithm) -> Digest:
    """Hash a whole file; hashlib.file_digest reads it in large blocks without the GIL."""
    with path.open("rb") as f:
        return Digest(algorithm, hashlib.file_digest(f, algorithm).hexdigest())
