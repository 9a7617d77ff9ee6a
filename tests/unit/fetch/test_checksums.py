"""Checksum files in each vendor's published shape (samples/, written for these tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.fetch.checksums import (
    detect_format,
    find_checksum,
    parse_checksums,
    unwrap_clearsigned,
)
from imagefactory.fetch.errors import ChecksumFileError

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


@pytest.mark.parametrize(
    ("file", "fmt", "image", "algorithm", "prefix", "size"),
    [
        (
            "centos9-CHECKSUM",
            "bsd",
            "CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2",
            "sha256",
            "938167ff01bc",
            1263337472,
        ),
        (
            "rocky9-CHECKSUM",
            "bsd",
            "Rocky-9-GenericCloud-Base.latest.x86_64.qcow2",
            "sha256",
            "3b4a990e307d",
            609222656,
        ),
        (
            "fedora44-CHECKSUM",
            "clearsigned",
            "Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2",
            "sha256",
            "7c628c39d1b1",
            574488576,
        ),
        (
            "debian13-SHA512SUMS",
            "gnu",
            "debian-13-genericcloud-amd64.qcow2",
            "sha512",
            "9d2f891c2b35",
            None,
        ),
        (
            "ubuntu24-SHA256SUMS",
            "gnu",
            "noble-server-cloudimg-amd64.img",
            "sha256",
            "b776fcff89bf",
            None,
        ),
    ],
)
def test_vendor_file_is_detected_and_image_found(
    file: str, fmt: str, image: str, algorithm: str, prefix: str, size: int | None
) -> None:
    text = sample(file)
    assert detect_format(text) == fmt
    entry = find_checksum(parse_checksums(text), image)
    assert entry.name == image
    assert entry.algorithm == algorithm
    assert entry.hexdigest.startswith(prefix)
    assert len(entry.hexdigest) == {"sha256": 64, "sha512": 128}[algorithm]
    assert entry.size == size


def test_explicit_format_matches_auto_detection() -> None:
    assert parse_checksums(sample("ubuntu24-SHA256SUMS"), "gnu") == parse_checksums(
        sample("ubuntu24-SHA256SUMS")
    )
    assert parse_checksums(sample("rocky9-CHECKSUM"), "bsd") == parse_checksums(
        sample("rocky9-CHECKSUM")
    )


def test_gnu_binary_marker_is_not_part_of_the_name() -> None:
    names = {e.name for e in parse_checksums(sample("ubuntu24-SHA256SUMS"))}
    assert "noble-server-cloudimg-amd64.img" in names
    assert not any(n.startswith("*") for n in names)


def test_wrong_explicit_format_is_an_error() -> None:
    with pytest.raises(ChecksumFileError, match="line 2: not a GNU checksum line"):
        parse_checksums(sample("centos9-CHECKSUM"), "gnu")
    with pytest.raises(ChecksumFileError, match="clear-signed"):
        parse_checksums(sample("fedora44-CHECKSUM"), "bsd")


def test_clearsigned_body_is_unwrapped_and_dash_escapes_undone() -> None:
    digest = "ab" * 32
    text = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        "- # a comment that starts with a dash\n"
        f"SHA256 (img.qcow2) = {digest}\n"
        "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n=AAAA\n-----END PGP SIGNATURE-----\n"
    )
    assert unwrap_clearsigned(text).splitlines()[0] == "# a comment that starts with a dash"
    assert find_checksum(parse_checksums(text), "img.qcow2").hexdigest == digest


def test_lines_appended_after_the_signature_are_ignored() -> None:
    forged = sample("fedora44-CHECKSUM") + f"SHA256 (evil.qcow2) = {'00' * 32}\n"
    entries = parse_checksums(forged, "clearsigned")
    assert "evil.qcow2" not in {e.name for e in entries}
    with pytest.raises(ChecksumFileError, match=r"evil\.qcow2 is not listed"):
        find_checksum(entries, "evil.qcow2")


def test_truncated_clearsigned_file_is_rejected() -> None:
    text = sample("fedora44-CHECKSUM").split("-----BEGIN PGP SIGNATURE-----")[0]
    with pytest.raises(ChecksumFileError, match="no signature block"):
        parse_checksums(text)


def test_missing_image_name_names_the_image() -> None:
    entries = parse_checksums(sample("debian13-SHA512SUMS"))
    with pytest.raises(ChecksumFileError, match=r"debian-13-generic-amd64\.qcow2 is not listed"):
        find_checksum(entries, "debian-13-generic-amd64.qcow2")


def test_html_page_is_an_unknown_format() -> None:
    html = "<!DOCTYPE html>\n<html><body>Index of /images</body></html>\n"
    with pytest.raises(ChecksumFileError, match="unknown checksum file format"):
        parse_checksums(html)


def test_empty_file_is_an_unknown_format() -> None:
    with pytest.raises(ChecksumFileError, match="unknown checksum file format"):
        parse_checksums("\n# only a comment\n")


def test_garbage_line_is_reported_with_its_number_not_skipped() -> None:
    text = sample("ubuntu24-SHA256SUMS") + "this line is not a checksum\n"
    with pytest.raises(ChecksumFileError, match="line 12: not a GNU checksum line"):
        parse_checksums(text)


def test_conflicting_digests_for_one_name_are_refused() -> None:
    text = f"{'aa' * 32}  img.qcow2\n{'bb' * 32}  img.qcow2\n"
    with pytest.raises(ChecksumFileError, match="2 different sha256 digests"):
        find_checksum(parse_checksums(text), "img.qcow2")


def test_weak_algorithms_are_never_used() -> None:
    text = f"{'aa' * 16}  img.qcow2\n{'bb' * 20}  img.qcow2\n"
    with pytest.raises(ChecksumFileError, match=r"no sha512 or sha256 checksum .*found: md5, sha1"):
        find_checksum(parse_checksums(text), "img.qcow2")


def test_strongest_algorithm_preferred_unless_one_is_asked_for() -> None:
    text = f"SHA256 (img.qcow2) = {'aa' * 32}\nSHA512 (img.qcow2) = {'bb' * 64}\n"
    entries = parse_checksums(text)
    assert find_checksum(entries, "img.qcow2").algorithm == "sha512"
    assert find_checksum(entries, "img.qcow2", algorithm="sha256").hexdigest == "aa" * 32


def test_algorithm_hint_rejects_digest_of_wrong_length() -> None:
    with pytest.raises(ChecksumFileError, match="cannot be sha512"):
        parse_checksums(sample("ubuntu24-SHA256SUMS"), algorithm="sha512")


def test_bsd_digest_of_wrong_length_is_refused() -> None:
    with pytest.raises(ChecksumFileError, match="SHA256 digest has 62 hex digits"):
        parse_checksums(f"SHA256 (img.qcow2) = {'a' * 62}\n")


def test_gnu_escaped_name_and_relative_paths() -> None:
    text = f"\\{'cc' * 32}  odd\\\\name.img\n{'dd' * 32} *./images/disk.qcow2\n"
    entries = parse_checksums(text)
    assert find_checksum(entries, "odd\\name.img").hexdigest == "cc" * 32
    assert find_checksum(entries, "disk.qcow2").hexdigest == "dd" * 32


def test_uppercase_hex_and_crlf_line_endings() -> None:
    text = f"SHA256 (img.qcow2) = {'AB' * 32}\r\n"
    assert find_checksum(parse_checksums(text), "img.qcow2").hexdigest == "ab" * 32


def test_bsd_names_with_parentheses() -> None:
    text = f"SHA256 (disk (copy).qcow2) = {'ef' * 32}\n"
    assert find_checksum(parse_checksums(text), "disk (copy).qcow2").hexdigest == "ef" * 32
