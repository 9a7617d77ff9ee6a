"""Receive an HTTP body into a part file while hashing it, at close to curl's CPU cost.

Why this module exists: for a 1 GiB image the per-byte cost is what matters.  Reading through
urllib3's generic stream allocates and copies every chunk, then ``write`` copies it again into
the page cache, and sha256 costs as much again.  Here, when the length is known:

- the part file is preallocated (``posix_fallocate``: a full disk fails *now*, cleanly, not as
  a SIGBUS from a mapped page later) and mapped; the socket is read straight into the
  mapping, so each byte is copied once, from the socket into the page cache;
- the freshly received bytes are hashed from that same memory on a second thread
  (`BackgroundHasher`) while the next chunk arrives - the file is never read back.

Without a known length, or when the filesystem cannot preallocate or map, the body is read in
chunks and appended with ``write``.  Either way the part file ends holding exactly the valid
prefix: on any failure it is truncated back to the bytes actually received.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from imagefactory.fetch.hashing import BackgroundHasher, Hasher

#: Bytes per read; large enough that per-chunk Python overhead is negligible.
CHUNK_SIZE = 1 << 20
#: Linux >= 5.14: fault a range in writable with one call instead of one fault per page.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
_CANNOT_MAP = (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.ENODEV, errno.EACCES)

ReadInto = Callable[[memoryview], int]


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The raw body in chunks, with urllib3's errors mapped to the requests errors we retry on.

    Like `Response.iter_content` minus content decoding (encoded bodies are refused earlier),
    whose buffer would copy every chunk once more.
    """
    try:
        yield from response.raw.stream(CHUNK_SIZE, decode_content=False)
    except urllib3.exceptions.ProtocolError as exc:  # a truncated body (IncompleteRead)
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def raw_readinto(response: requests.Response) -> ReadInto | None:
    """``readinto`` of the http.client response under urllib3, if it is there.

    urllib3 keeps it as ``_fp`` (1.x and 2.x alike); reading from it directly is what avoids
    urllib3's per-chunk copies.  If a future urllib3 does not have it, `body_chunks` is used.
    """
    fp = getattr(response.raw, "_fp", None)
    return fp.readinto if isinstance(fp, http.client.HTTPResponse) else None


def receive_into(readinto: ReadInto, target: memoryview) -> int:
    """One ``readinto``, with socket errors turned into the requests errors we retry on.

    http.client returns 0 rather than raising when a body with a Content-Length ends early;
    the caller's length check turns that into a retry.
    """
    try:
        return readinto(target)
    except TimeoutError as exc:
        raise requests.ConnectionError(f"Read timed out: {exc}") from exc
    except http.client.HTTPException as exc:  # IncompleteRead of a chunked body
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except OSError as exc:  # connection reset, TLS errors
        raise requests.ConnectionError(exc) from exc


@dataclass
class _Position:
    """Absolute end of the valid bytes; updated as chunks land, read by cleanup on failure."""

    end: int


def receive_body(
    response: requests.Response,
    part: Path,
    *,
    offset: int,
    total: int | None,
    hasher: Hasher,
    on_bytes: Callable[[int], None],
    on_preallocate: Callable[[], None],
) -> None:
    """Append the body to `part`, whose first `offset` bytes are valid (0: start afresh).

    `hasher` must already cover those `offset` bytes; `on_bytes` is called per chunk;
    `on_preallocate` just before the file is extended beyond its valid prefix, so the caller
    can note that a crash from here on leaves a file whose size is not its valid length.
    Disk-full surfaces as `OSError` (ENOSPC); network trouble as requests' exceptions.
    """
    readinto = raw_readinto(response)
    if (
        readinto is not None
        and total is not None
        and total > offset
        and _receive_mapped(readinto, part, offset, total, hasher, on_bytes, on_preallocate)
    ):
        return
    _receive_written(response, readinto, part, offset, hasher, on_bytes)


def _receive_written(
    response: requests.Response,
    readinto: ReadInto | None,
    part: Path,
    offset: int,
    hasher: Hasher,
    on_bytes: Callable[[int], None],
) -> None:
    with part.open("ab" if offset else "wb") as out, BackgroundHasher(hasher) as background:
        if readinto is None:
            for chunk in body_chunks(response):
                out.write(chunk)
                background.update(chunk)
                on_bytes(len(chunk))
            return
        while True:
            buffer = background.buffer()
            received = receive_into(readinto, memoryview(buffer))
            if not received:
                background.release(buffer)
                return
            out.write(memoryview(buffer)[:received])
            background.submit(buffer, received)
            on_bytes(received)


def _receive_mapped(
    readinto: ReadInto,
    part: Path,
    offset: int,
    total: int,
    hasher: Hasher,
    on_bytes: Callable[[int], None],
    on_preallocate: Callable[[], None],
) -> bool:
    """Receive into a mapping of the preallocated file; False if this filesystem cannot."""
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    position = _Position(offset)
    try:
        os.ftruncate(fd, offset)  # anything past the valid prefix is stale
        on_preallocate()
        try:
            os.posix_fallocate(fd, offset, total - offset)
            base = offset - offset % mmap.ALLOCATIONGRANULARITY
            mapping = mmap.mmap(
                fd, total - base, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=base
            )
        except OSError as exc:
            if exc.errno in _CANNOT_MAP:
                return False
            raise
        try:
            _fill(mapping, base, total, position, readinto, hasher, on_bytes)
        finally:
            # A traceback may still reference a slice of the mapping; then it is unmapped when
            # collected.  Nothing touches it after the hasher thread has been joined.
            with contextlib.suppress(BufferError):
                mapping.close()
        return True
    finally:
        os.ftruncate(fd, position.end)  # the file holds exactly the bytes received
        os.close(fd)


def _fill(
    mapping: mmap.mmap,
    base: int,
    total: int,
    position: _Position,
    readinto: ReadInto,
    hasher: Hasher,
    on_bytes: Callable[[int], None],
) -> None:
    view = memoryview(mapping)
    populate = True
    with BackgroundHasher(hasher) as background:
        while position.end < total:
            start = position.end - base
            stop = min(start + CHUNK_SIZE, total - base)
            if populate:
                aligned = start - start % mmap.PAGESIZE
                try:
                    mapping.madvise(_MADV_POPULATE_WRITE, aligned, stop - aligned)
                except OSError:
                    populate = False  # older kernel: plain page faults are fine
            received = receive_into(readinto, view[start:stop])
            if not received:
                break
            background.update(view[start : start + received])
            position.end += received
            on_bytes(received)
    view.release()
