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
    """Hash on a second thread, so hashing overlaps receiving and writing.

    hashlib releases the GIL while hashing large buffers, and sha256 alone costs about as much
    CPU as the whole receive-and-write path; done inline it would nearly halve throughput on a
    fast link.  Two ways to feed it:

    - `buffer` / `submit`: take a reusable buffer from the pool, fill it (``readinto``), submit
      it; it returns to the pool once hashed.  No allocation per chunk, and memory is bounded
      by the pool (`depth` buffers of `chunk_size`).
    - `update`: hand over a bytes object (bounded queue of `depth` chunks).

    Use as a context manager: leaving it waits for the thread; `hexdigest` is valid after a
    clean exit only.
    """

    def __init__(self, hasher: Hasher, *, chunk_size: int = 1 << 20, depth: int = 8) -> None:
        self._hasher = hasher
        self._chunk_size = chunk_size
        self._depth = depth
        self._allocated = 0
        self._free: queue.Queue[bytearray] = queue.Queue()
        self._work: queue.Queue[tuple[bytes | bytearray | memoryview, int] | None] = queue.Queue(
            maxsize=depth
        )
        self._thread = threading.Thread(target=self._run, name="fetch-hasher", daemon=True)
        self._done = False

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            data, length = item
            self._hasher.update(memoryview(data)[:length])
            if isinstance(data, bytearray):
                self._free.put(data)

    def buffer(self) -> bytearray:
        """A buffer to fill; blocks while all `depth` buffers wait to be hashed."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            if self._allocated < self._depth:
                self._allocated += 1
                return bytearray(self._chunk_size)
            return self._free.get()

    def submit(self, buffer: bytearray, length: int) -> None:
        """Hash the first `length` bytes of `buffer`, then return it to the pool."""
        self._work.put((buffer, length))

    def release(self, buffer: bytearray) -> None:
        """Return a buffer that was not filled."""
        self._free.put(buffer)

    def update(self, chunk: bytes | memoryview) -> None:
        """Hash `chunk` (which must not change until hashed)."""
        self._work.put((chunk, len(chunk)))

    def __enter__(self) -> BackgroundHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._work.put(None)
        self._thread.join()
        self._done = True

    def hexdigest(self) -> str:
        assert self._done, "hexdigest() before the background hasher finished"
        return self._hasher.hexdigest()
