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
    """Hash filled buffers on a second thread while the caller receives into the next one.

    hashlib releases the GIL for large buffers, so on an idle core hashing overlaps the
    network and the disk instead of adding to them.  Buffers come from a small pool (`depth`
    of `chunk_size`; 4 x 256 KiB stays within one core's L2 cache) and return to it once
    hashed, so nothing is allocated per chunk and memory stays bounded.  Use as a context
    manager; leaving it waits until everything submitted has been hashed.
    """

    def __init__(self, hasher: Hasher, *, chunk_size: int, depth: int = 4) -> None:
        self._hasher = hasher
        self._free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(depth):
            self._free.put(bytearray(chunk_size))
        self._work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="fetch-hasher", daemon=True)

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            buffer, length = item
            self._hasher.update(memoryview(buffer)[:length])
            self._free.put(buffer)

    def buffer(self) -> bytearray:
        """A buffer to fill; waits while every buffer is queued for hashing."""
        return self._free.get()

    def submit(self, buffer: bytearray, length: int) -> None:
        """Hash the first `length` bytes of `buffer`; it returns to the pool afterwards."""
        self._work.put((buffer, length))

    def release(self, buffer: bytearray) -> None:
        """Return a buffer that was not filled."""
        self._free.put(buffer)

    def __enter__(self) -> BackgroundHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._work.put(None)
        self._thread.join()
