"""Hashing helpers shared by the downloader and the cache."""

from __future__ import annotations

import hashlib
import queue
import threading
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


class BackgroundHasher:
    """Feed chunks to a hasher on a second thread, so hashing overlaps receiving and writing.

    hashlib releases the GIL while hashing large buffers, and sha256 alone runs at roughly the
    speed of a loopback transfer; done inline it would halve download throughput on a fast
    link.  The queue is bounded (`depth` chunks) so memory stays small when hashing is the
    slower side.  Use as a context manager: leaving it waits for the thread, and `hexdigest`
    is valid only after a clean exit.
    """

    def __init__(self, hasher: Hasher, *, depth: int = 16) -> None:
        self._hasher = hasher
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="fetch-hasher", daemon=True)
        self._done = False

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def __enter__(self) -> BackgroundHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._queue.put(None)
        self._thread.join()
        self._done = True

    def hexdigest(self) -> str:
        assert self._done, "hexdigest() before the background hasher finished"
        return self._hasher.hexdigest()
