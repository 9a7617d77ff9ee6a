"""The results disk: how a test run's artifacts leave the guest without SSH or a network.

The host gives each clone a sparse raw file as a second disk (virtio serial
`klab-results`).  When the tests are done, the guest runner (hooks/testrun/50-klab-test.sh)
writes a tar.gz of everything it collected from byte 4096 on, and only then a header
block at byte 0 naming the archive's size and SHA-256.  After QEMU exits, the host reads
the header, checks the archive against it and unpacks it into the run's artifacts
directory.  A disk without a header means the guest never finished collecting (crash,
timeout); a header whose checksum does not match means a torn write: both are
infrastructure errors, never an empty pass.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import InfrastructureError

MAGIC = b"KLAB-RESULTS 1\n"
HEADER_SIZE = 4096
DEFAULT_SIZE = 4 * 1024**3
"""Sparse: only what the guest writes takes space.  A full common+linux run is ~100 MB."""
SERIAL = "klab-results"
_CHUNK = 1024 * 1024


class ResultsDiskError(InfrastructureError):
    """The guest's results could not be read: nothing written, torn, or not an archive."""


@dataclass(frozen=True, slots=True)
class ResultsHeader:
    format: str
    size: int
    sha256: str


def create_results_disk(path: Path, size: int = DEFAULT_SIZE) -> Path:
    """A sparse, zero-filled raw file of `size` bytes (no header: nothing written yet)."""
    if size <= HEADER_SIZE:
        raise ValueError(f"a results disk needs more than {HEADER_SIZE} bytes")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as disk:
        disk.truncate(size)
    return path


def read_header(path: Path) -> ResultsHeader | None:
    """The header the guest wrote, or None when it wrote none."""
    with path.open("rb") as disk:
        block = disk.read(HEADER_SIZE)
    if not block.startswith(MAGIC):
        return None
    fields: dict[str, str] = {}
    for line in block[len(MAGIC) :].split(b"\0", 1)[0].decode("ascii", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        header = ResultsHeader(fields["format"], int(fields["size"]), fields["sha256"].lower())
    except (KeyError, ValueError) as exc:
        raise ResultsDiskError(f"{path}: the results header is malformed: {fields}") from exc
    if header.format != "tar.gz":
        raise ResultsDiskError(f"{path}: unknown results format {header.format!r}")
    if header.size <= 0 or HEADER_SIZE + header.size > path.stat().st_size:
        raise ResultsDiskError(
            f"{path}: the header claims {header.size} bytes, more than the disk holds"
        )
    return header


class _Window(io.RawIOBase):
    """A read-only view of `size` bytes of a file from `offset` (the archive on the disk)."""

    def __init__(self, handle: io.BufferedReader, offset: int, size: int) -> None:
        self._handle = handle
        self._left = size
        handle.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        count = self._handle.readinto(view)
        self._left -= count
        return count


def _check_digest(handle: io.BufferedReader, header: ResultsHeader, path: Path) -> None:
    digest = hashlib.sha256()
    window = _Window(handle, HEADER_SIZE, header.size)
    while chunk := window.read(_CHUNK):
        digest.update(chunk)
    if digest.hexdigest() != header.sha256:
        raise ResultsDiskError(
            f"{path}: the results archive does not match its checksum (a torn write?)"
        )


def extract_results(path: Path, destination: Path) -> list[str]:
    """Unpack the guest's archive into `destination`; return the member names.

    Extraction uses tarfile's `data` filter: nothing outside `destination`, no devices,
    no absolute or escaping links, whatever the guest wrote.
    """
    header = read_header(path)
    if header is None:
        raise ResultsDiskError(
            "the guest wrote no results (the run did not get as far as collecting them)",
            hint="see console.log next to it: the guest's own log of the run",
        )
    destination.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as handle:
        _check_digest(handle, header, path)
        window = io.BufferedReader(_Window(handle, HEADER_SIZE, header.size), _CHUNK)
        try:
            with tarfile.open(fileobj=window, mode="r|gz") as archive:
                names: list[str] = []
                for member in archive:
                    archive.extract(member, destination, filter="data")
                    names.append(member.name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ResultsDiskError(f"{path}: cannot unpack the results: {exc}") from exc
    return names


def results_size_on_disk(path: Path) -> int:
    """Bytes the sparse file really takes (for logs: what the guest wrote)."""
    return path.stat().st_blocks * 512
