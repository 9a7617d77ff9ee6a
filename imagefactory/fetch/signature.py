"""GPG verification of vendor checksum files against pinned fingerprints only.

The key files shipped in the repository's ``keys/`` directory often hold more keys than we
trust (Fedora's ``fedora.gpg`` carries every release's key).  So we never verify against the
file itself: we import it into a throw-away GNUPGHOME, check that every pinned fingerprint is
there, export *only* those keys into a fresh keyring, and hand that keyring to ``gpgv``.  A
signature by any other key, even one in the shipped file, then fails as "no public key".
``gpgv`` (not ``gpg --verify``) because it has no trust database or agent to get wrong, and
its ``--status-fd`` output is stable and machine-readable; we still confirm from ``VALIDSIG``
that the signer's primary key is a pinned one.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import structlog

from imagefactory.fetch.errors import SignatureError
from imagefactory.run import require_tool, run

log = structlog.get_logger(__name__)

_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


def normalise_fingerprint(text: str) -> str:
    """``D2EB 4462 ...`` and ``d2eb4462...`` are the same fingerprint; ``0x`` is tolerated."""
    compact = text.replace(" ", "").upper().removeprefix("0X")
    if not _FINGERPRINT.match(compact):
        raise SignatureError(f"not an OpenPGP fingerprint: {text!r}")
    return compact


def _gpg_env(home: Path) -> dict[str, str]:
    return {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}


def _key_fingerprints(gpg: str, home: Path) -> set[str]:
    """Primary-key fingerprints in the throw-away home's public keyring."""
    listing = run(
        [gpg, "--batch", "--no-autostart", "--with-colons", "--list-keys"], env=_gpg_env(home)
    )
    fingerprints: set[str] = set()
    previous = ""
    for line in listing.stdout.splitlines():
        fields = line.split(":")
        # The first fpr record after a pub record is the primary key's.
        if fields[0] == "fpr" and previous == "pub":
            fingerprints.add(fields[9].upper())
        previous = fields[0]
    return fingerprints


def build_pinned_keyring(key_file: Path, fingerprints: Sequence[str], workdir: Path) -> Path:
    """Write a keyring holding only the pinned keys from `key_file`; return its path.

    Fails if the key file cannot be read or lacks a pinned fingerprint, so a typo in the spec
    or a stale key file is reported as such, not as a "bad signature".
    """
    if not key_file.is_file():
        raise SignatureError(
            f"key file {key_file} does not exist",
            hint="ship the vendor's public key in the repository's keys/ directory",
        )
    gpg = require_tool("gpg", package="gpg")
    pinned = [normalise_fingerprint(f) for f in fingerprints]
    if not pinned:
        raise SignatureError("a signature check needs at least one pinned fingerprint")
    home = workdir / "gnupg"
    home.mkdir(mode=0o700)
    env = _gpg_env(home)
    imported = run([gpg, "--batch", "--no-autostart", "--import", key_file], env=env, check=False)
    available = _key_fingerprints(gpg, home)
    if not available:
        raise SignatureError(
            f"no OpenPGP public keys could be read from {key_file}: "
            f"{imported.stderr.strip().splitlines()[-1:]}"
        )
    missing = [f for f in pinned if f not in available]
    if missing:
        raise SignatureError(
            f"{key_file.name} does not contain the pinned key(s) {', '.join(missing)}",
            hint=f"keys in the file: {', '.join(sorted(available))}",
        )
    keyring = workdir / "pinned.gpg"
    run(
        [
            gpg,
            "--batch",
            "--no-autostart",
            "--export-options",
            "export-minimal",
            "--output",
            keyring,
            "--export",
            *pinned,
        ],
        env=env,
    )
    log.debug("signature.keyring", key_file=str(key_file), pinned=pinned)
    return keyring


def _gpgv(keyring: Path, args: Sequence[str | Path], pinned: Sequence[str], what: str) -> str:
    """Run gpgv; return the pinned primary fingerprint that made a good signature."""
    gpgv = require_tool("gpgv", package="gpgv")
    home = keyring.parent / "gnupg"
    proc = run(
        [gpgv, "--status-fd", "1", "--keyring", keyring, *args],
        env=_gpg_env(home),
        check=False,
    )
    status = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] ")]
    good: list[str] = []
    for fields in status:
        if fields[0] == "VALIDSIG" and len(fields) >= 11:
            primary = fields[10].upper()  # the 10th argument is the primary key's fingerprint
            if primary in pinned or fields[1].upper() in pinned:
                good.append(primary)
        if fields[0] == "BADSIG":
            raise SignatureError(f"BAD signature on {what} (key {fields[1]}): file was altered")
    if proc.returncode == 0 and good:
        log.info("signature.good", file=what, fingerprint=good[0])
        return good[0]
    unknown = [f[1] for f in status if f[0] in ("NO_PUBKEY", "ERRSIG") and len(f) > 1]
    if unknown:
        raise SignatureError(
            f"{what} is signed by key {unknown[0]}, which is not pinned in the spec",
            hint="if the vendor rotated its key, verify the new key out of band and pin it",
        )
    if not any(f[0] in ("NEWSIG", "GOODSIG", "VALIDSIG") for f in status):
        raise SignatureError(f"{what} carries no OpenPGP signature")
    tail = proc.stderr.strip().splitlines()[-1:] or ["no detail"]
    raise SignatureError(f"signature check of {what} failed: {tail[0]}")


def verify_detached(
    data: Path, signature: Path, *, key_file: Path, fingerprints: Sequence[str]
) -> str:
    """Verify a detached signature (Ubuntu ``SHA256SUMS.gpg``); return the signer's fingerprint."""
    pinned = [normalise_fingerprint(f) for f in fingerprints]
    with tempfile.TemporaryDirectory(prefix="imagefactory-gpg-") as tmp:
        keyring = build_pinned_keyring(key_file, pinned, Path(tmp))
        return _gpgv(keyring, [signature, data], pinned, data.name)


def verify_clearsigned(signed: Path, *, key_file: Path, fingerprints: Sequence[str]) -> bytes:
    """Verify a clear-signed file (Fedora CHECKSUM) and return the body gpgv verified.

    Callers must parse this body, never the raw file: text outside the signed section, or
    lines a naive unwrapper reads differently from gpg, would otherwise be trusted.
    """
    pinned = [normalise_fingerprint(f) for f in fingerprints]
    with tempfile.TemporaryDirectory(prefix="imagefactory-gpg-") as tmp:
        keyring = build_pinned_keyring(key_file, pinned, Path(tmp))
        body = Path(tmp) / "body"
        _gpgv(keyring, ["--output", body, signed], pinned, signed.name)
        return body.read_bytes()
