"""gpgv verification against pinned fingerprints, with throw-away keys and the repo's keys."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from imagefactory.fetch.errors import SignatureError
from imagefactory.fetch.signature import (
    build_pinned_keyring,
    normalise_fingerprint,
    verify_clearsigned,
    verify_detached,
)
from imagefactory.paths import keys_dir
from imagefactory.spec import load_distro
from tests.fixtures.gpg_keys import ThrowawayKeys

BODY = f"{'ab' * 32} *image.img\n"


@pytest.fixture
def sums(tmp_path: Path) -> Path:
    path = tmp_path / "SHA256SUMS"
    path.write_text(BODY)
    return path


def test_detached_signature_by_pinned_key_verifies(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    sig = gpg_keys.sign_detached(sums, gpg_keys.trusted, tmp_path / "SHA256SUMS.gpg")
    signer = verify_detached(sums, sig, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])
    assert signer == gpg_keys.trusted


def test_signature_by_unpinned_key_in_the_same_key_file_fails(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    sig = gpg_keys.sign_detached(sums, gpg_keys.stranger, tmp_path / "SHA256SUMS.gpg")
    with pytest.raises(SignatureError, match="which is not pinned"):
        verify_detached(sums, sig, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])


def test_altered_file_fails_as_bad_signature(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    sig = gpg_keys.sign_detached(sums, gpg_keys.trusted, tmp_path / "SHA256SUMS.gpg")
    sums.write_text(BODY.replace("ab", "cd", 1))
    with pytest.raises(SignatureError, match="BAD signature"):
        verify_detached(sums, sig, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])


def test_garbage_signature_file_fails(gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path) -> None:
    sig = tmp_path / "SHA256SUMS.gpg"
    sig.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(SignatureError):
        verify_detached(sums, sig, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])


def test_clearsigned_returns_the_verified_body(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    signed = gpg_keys.clearsign(sums, gpg_keys.trusted, tmp_path / "CHECKSUM")
    body = verify_clearsigned(signed, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])
    assert body.decode() == BODY


def test_clearsigned_body_excludes_text_appended_after_the_signature(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    signed = gpg_keys.clearsign(sums, gpg_keys.trusted, tmp_path / "CHECKSUM")
    with signed.open("a") as f:
        f.write(f"{'00' * 32} *evil.img\n")
    body = verify_clearsigned(signed, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])
    assert b"evil.img" not in body


def test_clearsigned_by_unpinned_key_fails(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    signed = gpg_keys.clearsign(sums, gpg_keys.stranger, tmp_path / "CHECKSUM")
    with pytest.raises(SignatureError, match="not pinned"):
        verify_clearsigned(signed, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])


def test_unsigned_file_fails_clearsigned_check(gpg_keys: ThrowawayKeys, sums: Path) -> None:
    with pytest.raises(SignatureError, match="no OpenPGP signature"):
        verify_clearsigned(sums, key_file=gpg_keys.key_file, fingerprints=[gpg_keys.trusted])


def test_pinned_fingerprint_missing_from_key_file_is_reported(
    gpg_keys: ThrowawayKeys, sums: Path, tmp_path: Path
) -> None:
    sig = gpg_keys.sign_detached(sums, gpg_keys.trusted, tmp_path / "SHA256SUMS.gpg")
    with pytest.raises(SignatureError, match=r"does not contain the pinned key\(s\) 0123"):
        verify_detached(sums, sig, key_file=gpg_keys.key_file, fingerprints=["0123" * 10])


def test_missing_key_file_is_reported(sums: Path, tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="does not exist"):
        verify_detached(sums, sums, key_file=tmp_path / "nope.gpg", fingerprints=["AB" * 20])


def test_fingerprints_are_normalised() -> None:
    assert normalise_fingerprint("d2eb 4462 6fdd c30b 513d 5bb7 1a5d 6c4c 7db8 7c81") == (
        "D2EB44626FDDC30B513D5BB71A5D6C4C7DB87C81"
    )
    with pytest.raises(SignatureError):
        normalise_fingerprint("D2EB4462")


@pytest.mark.parametrize("distro", ["ubuntu24", "fedora44"])
def test_repository_key_files_hold_the_fingerprints_their_specs_pin(distro: str) -> None:
    source = load_distro(distro, env={}).spec.source.cloud_image
    assert source is not None and source.signature is not None
    with tempfile.TemporaryDirectory() as tmp:
        keyring = build_pinned_keyring(
            keys_dir() / source.signature.keyring, source.signature.fingerprints, Path(tmp)
        )
        assert keyring.stat().st_size > 0
