"""Vendor checksum files: parse every published format and find one image's digest.

The five targets publish three shapes (reference/distros.md §2.6):

- GNU coreutils: ``<hex>  <name>`` (text mode, Debian ``SHA512SUMS``) or ``<hex> *<name>``
  (binary mode, Ubuntu ``SHA256SUMS``); a leading backslash marks an escaped name.
- BSD / ``--tag``: ``SHA256 (<name>) = <hex>``, in CentOS and Rocky ``CHECKSUM`` files preceded
  by ``# <name>: <N> bytes`` comments, which we keep as the expected size.
- Fedora: the BSD shape wrapped in an OpenPGP clear-signed message.

Parsing is strict on purpose: a line that is neither blank, a comment, nor a checksum line is an
error rather than something to skip, because a parser that silently skips lines it does not
understand is how an attacker's line (or a vendor's format change) goes unnoticed.  For a
clear-signed file the caller must parse the body that ``gpgv --output`` verified
(`signature.verify_clearsigned`), never the raw file; `unwrap_clearsigned` exists only for
clear-signed files whose signature the spec does not ask us to check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from imagefactory.fetch.errors import ChecksumFileError

ChecksumFormat = Literal["auto", "gnu", "bsd", "clearsigned"]

#: Algorithms we accept for verification; weaker ones (md5, sha1) are parsed but never used.
TRUSTED_ALGORITHMS = ("sha512", "sha256")

# GNU tools infer the algorithm from the digest length; blake2b-512 shares sha512's length, so
# a spec that uses B2SUMS must name its algorithm (and we do not support it anyway).
_HEX_LENGTH_ALGORITHM = {
    32: "md5",
    40: "sha1",
    56: "sha224",
    64: "sha256",
    96: "sha384",
    128: "sha512",
}
_ALGORITHM_HEX_LENGTH = {alg: n for n, alg in _HEX_LENGTH_ALGORITHM.items()}

_GNU_LINE = re.compile(r"^(?P<escaped>\\)?(?P<hex>[0-9a-fA-F]{32,128}) (?P<mode>[ *])(?P<name>.+)$")
_BSD_LINE = re.compile(
    r"^(?P<escaped>\\)?(?P<alg>[A-Za-z][A-Za-z0-9-]*) \((?P<name>.+)\) = (?P<hex>[0-9a-fA-F]+)$"
)
# `# <name>: <N> bytes`.  Anchored at the line's end and split at the last colon, not one
# regex with `.+` after `\s*`: that backtracks quadratically on a long line of spaces (a
# 16 MiB checksum file of them would hang the fetch).  A size has at most 20 digits.
_SIZE_TAIL = re.compile(r":[ \t]*(?P<size>[0-9]{1,20})[ \t]+bytes[ \t]*$")

_CLEARSIGN_BEGIN = "-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_BEGIN = "-----BEGIN PGP SIGNATURE-----"


@dataclass(frozen=True)
class ChecksumEntry:
    """One checksum line: the file it names, its algorithm and digest, and its size if listed."""

    name: str
    algorithm: str
    hexdigest: str
    size: int | None
    line: int


def is_clearsigned(text: str) -> bool:
    """True when the text is an OpenPGP clear-signed message (Fedora's CHECKSUM)."""
    return text.lstrip("\ufeff\r\n\t ").startswith(_CLEARSIGN_BEGIN)


def unwrap_clearsigned(text: str) -> str:
    """Return a clear-signed message's body WITHOUT checking its signature.

    Only for sources whose spec asks for no signature check; a verified body comes from
    `signature.verify_clearsigned`.  Undoes dash-escaping (RFC 4880 §7.1) and ignores anything
    outside the signed section, which is where appended, unsigned lines would hide.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == _CLEARSIGN_BEGIN)
    except StopIteration:
        raise ChecksumFileError("not a clear-signed message (no SIGNED MESSAGE header)") from None
    i = start + 1
    while i < len(lines) and lines[i].strip():  # armor headers ("Hash: SHA256") up to a blank line
        i += 1
    body: list[str] = []
    for line in lines[i + 1 :]:
        if line.strip() == _SIGNATURE_BEGIN:
            return "\n".join(body) + "\n"
        body.append(line[2:] if line.startswith("- ") else line)
    raise ChecksumFileError("clear-signed message has no signature block (truncated file?)")


def _unescape_name(name: str) -> str:
    """GNU tools escape ``\\`` and newlines in names and then prefix the line with ``\\``."""
    out: list[str] = []
    chars = iter(name)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append({"n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
    return "".join(out)


def _size_comment(line: str) -> tuple[str, int] | None:
    """`(name, size)` from a `# <name>: <N> bytes` comment (stripped line), else None."""
    colon = line.rfind(":")
    tail = _SIZE_TAIL.match(line, colon) if colon > 0 else None
    name = line[1:colon].lstrip()
    if tail is None or not name:
        return None
    return name, int(tail["size"])


def _normalise_bsd_algorithm(tag: str) -> str:
    """``SHA256``, ``SHA2-256`` and ``SHA-256`` all mean sha256."""
    return tag.lower().replace("sha2-", "sha").replace("sha-", "sha")


def _parse_gnu(m: re.Match[str], lineno: int, algorithm: str | None) -> ChecksumEntry | None:
    hexdigest = m["hex"].lower()
    inferred = _HEX_LENGTH_ALGORITHM.get(len(hexdigest))
    if inferred is None:
        return None
    if algorithm is not None and _ALGORITHM_HEX_LENGTH.get(algorithm) != len(hexdigest):
        raise ChecksumFileError(
            f"line {lineno}: a {len(hexdigest)}-digit digest cannot be {algorithm}"
        )
    name = _unescape_name(m["name"]) if m["escaped"] else m["name"]
    return ChecksumEntry(name, algorithm or inferred, hexdigest, None, lineno)


def _parse_bsd(m: re.Match[str], lineno: int) -> ChecksumEntry:
    algorithm = _normalise_bsd_algorithm(m["alg"])
    hexdigest = m["hex"].lower()
    expected_len = _ALGORITHM_HEX_LENGTH.get(algorithm)
    if expected_len is not None and len(hexdigest) != expected_len:
        raise ChecksumFileError(
            f"line {lineno}: {m['alg']} digest has {len(hexdigest)} hex digits, "
            f"expected {expected_len}"
        )
    name = _unescape_name(m["name"]) if m["escaped"] else m["name"]
    return ChecksumEntry(name, algorithm, hexdigest, None, lineno)


def detect_format(text: str) -> Literal["gnu", "bsd", "clearsigned"]:
    """Name the format of a checksum file from its first meaningful line."""
    if is_clearsigned(text):
        return "clearsigned"
    for raw in text.splitlines():
        line = raw.strip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _BSD_LINE.match(line):
            return "bsd"
        if _GNU_LINE.match(line):
            return "gnu"
        break
    raise ChecksumFileError(
        "unknown checksum file format: expected GNU ('<hex>  <name>'), "
        "BSD ('SHA256 (<name>) = <hex>') or a PGP clear-signed file",
        hint="check the spec's checksum.url points at the vendor's checksum file, not a web page",
    )


def parse_checksums(
    text: str, fmt: ChecksumFormat = "auto", *, algorithm: str | None = None
) -> list[ChecksumEntry]:
    """Parse a checksum file into entries.

    `fmt` "auto" detects the format; "clearsigned" unwraps an (unverified) clear-signed file and
    parses its body.  `algorithm` pins the algorithm of GNU lines, whose algorithm is otherwise
    inferred from the digest length.  Every non-blank, non-comment line must parse.
    """
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "clearsigned":
        return parse_checksums(unwrap_clearsigned(text), "auto", algorithm=algorithm)
    if is_clearsigned(text):
        raise ChecksumFileError(f"file is PGP clear-signed, not plain {fmt.upper()}")
    entries: list[ChecksumEntry] = []
    sizes: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            size = _size_comment(line.strip())
            if size is not None:
                sizes[size[0]] = size[1]
            continue
        entry: ChecksumEntry | None = None
        if fmt == "bsd":
            bsd = _BSD_LINE.match(line)
            entry = _parse_bsd(bsd, lineno) if bsd else None
        else:
            gnu = _GNU_LINE.match(line)
            entry = _parse_gnu(gnu, lineno, algorithm) if gnu else None
        if entry is None:
            raise ChecksumFileError(
                f"line {lineno}: not a {fmt.upper()} checksum line: {line[:80]!r}",
                hint="set checksum.format in the spec if auto-detection picked the wrong format",
            )
        entries.append(entry)
    if not entries:
        raise ChecksumFileError("checksum file lists no files")
    return [
        ChecksumEntry(e.name, e.algorithm, e.hexdigest, sizes.get(e.name), e.line) for e in entries
    ]


def _name_matches(listed: str, wanted: str) -> bool:
    """Match exactly, or by base name when the file lists paths (``./x``, ``images/x``)."""
    return listed == wanted or listed.rsplit("/", 1)[-1] == wanted


def find_checksum(
    entries: Iterable[ChecksumEntry], name: str, *, algorithm: str | None = None
) -> ChecksumEntry:
    """Return the trusted entry for `name`, preferring `algorithm`, else the strongest listed.

    Fails when the name is missing, listed only with weak algorithms, or listed twice with
    different digests (an ambiguous file is not a trustworthy one).
    """
    listed = [e for e in entries if _name_matches(e.name, name)]
    if not listed:
        raise ChecksumFileError(
            f"{name} is not listed in the checksum file",
            hint="the vendor may have renamed or pruned the image; update the spec's url",
        )
    wanted = (algorithm,) if algorithm else TRUSTED_ALGORITHMS
    for alg in wanted:
        matches = [e for e in listed if e.algorithm == alg]
        exact = [e for e in matches if e.name == name] or matches
        digests = {e.hexdigest for e in exact}
        if len(digests) > 1:
            raise ChecksumFileError(f"{name} is listed with {len(digests)} different {alg} digests")
        if exact:
            return exact[0]
    found = ", ".join(sorted({e.algorithm for e in listed}))
    raise ChecksumFileError(
        f"{name} has no {' or '.join(wanted)} checksum in the file (found: {found})"
    )
