"""The results disk as the host reads it: header, checksum, safe unpacking.

The guest's writer is exercised for real in test_guest_runner.py; here the disk is written
the same way (archive from byte 4096, header last) to pin every way reading can fail.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from imagefactory.testrun.results_disk import (
    HEADER_SIZE,
    MAGIC,
    ResultsDiskError,
    create_results_disk,
    extract_results,
    read_header,
    results_size_on_disk,
)

SIZE = 8 * 1024 * 1024


def archive(files: dict[str, bytes], *, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return raw.getvalue()


def write_disk(path: Path, payload: bytes, *, header: bytes | None = None) -> Path:
    create_results_disk(path, SIZE)
    digest = hashlib.sha256(payload).hexdigest()
    text = header if header is not None else (
        MAGIC + f"format=tar.gz\nsize={len(payload)}\nsha256={digest}\n".encode()
    )  # fmt: skip
    with path.open("r+b") as disk:
        disk.seek(HEADER_SIZE)
        disk.write(payload)
        disk.seek(0)
        disk.write(text)
    return path


def test_a_new_disk_is_sparse_and_has_no_header(tmp_path: Path) -> None:
    disk = create_results_disk(tmp_path / "r.img", SIZE)

    assert disk.stat().st_size == SIZE
    assert results_size_on_disk(disk) < 64 * 1024
    assert read_header(disk) is None


def test_the_archive_comes_home_file_by_file(tmp_path: Path) -> None:
    files = {"./test.log": b"Test: x [PASS]\n", "./test_results/a/merged": b"out\n"}
    disk = write_disk(tmp_path / "r.img", archive(files))

    names = extract_results(disk, tmp_path / "home")

    assert (tmp_path / "home" / "test.log").read_bytes() == b"Test: x [PASS]\n"
    assert (tmp_path / "home" / "test_results" / "a" / "merged").read_bytes() == b"out\n"
    assert "./test.log" in names


def test_no_header_means_the_guest_wrote_nothing(tmp_path: Path) -> None:
    disk = create_results_disk(tmp_path / "r.img", SIZE)

    with pytest.raises(ResultsDiskError, match="wrote no results"):
        extract_results(disk, tmp_path / "home")


def test_a_torn_archive_fails_its_checksum(tmp_path: Path) -> None:
    payload = archive({"./test.log": b"x" * 10000})
    disk = write_disk(tmp_path / "r.img", payload)
    with disk.open("r+b") as handle:
        handle.seek(HEADER_SIZE + len(payload) // 2)
        handle.write(b"\0" * 64)

    with pytest.raises(ResultsDiskError, match="checksum"):
        extract_results(disk, tmp_path / "home")


def test_a_header_claiming_more_than_the_disk_is_refused(tmp_path: Path) -> None:
    header = MAGIC + f"format=tar.gz\nsize={SIZE * 2}\nsha256={'0' * 64}\n".encode()
    disk = write_disk(tmp_path / "r.img", b"", header=header)

    with pytest.raises(ResultsDiskError, match="more than the disk"):
        read_header(disk)


def test_a_malformed_header_is_an_error_not_a_crash(tmp_path: Path) -> None:
    disk = write_disk(tmp_path / "r.img", b"", header=MAGIC + b"format=tar.gz\nsize=abc\n")

    with pytest.raises(ResultsDiskError, match="malformed"):
        read_header(disk)


def test_members_escaping_the_artifacts_directory_are_refused(tmp_path: Path) -> None:
    """Whatever a broken guest writes, nothing lands outside the run's directory."""
    link = tarfile.TarInfo("./evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    disk = write_disk(
        tmp_path / "r.img", archive({"./ok.txt": b"fine", "../outside.txt": b"no"}, extra=[link])
    )

    with pytest.raises(ResultsDiskError, match="cannot unpack"):
        extract_results(disk, tmp_path / "home")

    assert not (tmp_path / "outside.txt").exists()
