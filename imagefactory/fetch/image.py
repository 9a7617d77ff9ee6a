"""Fetch a vendor cloud image into the cache: the fetch stage's one entry point.

Order of trust: first establish the expected digest (pinned in the spec, or read from the
vendor's checksum file after its signature checks out against pinned keys), then look in the
cache, and only then download, from the site mirror or the vendor URL and its mirrors in
order.  Bytes enter the cache only when their digest matches; ``qemu-img info`` then confirms
the format the spec expects (on a cache hit too: it costs milliseconds).

Site mirrors (air-gapped sites): ``--mirror BASE`` or ``IMAGEFACTORY_MIRROR=BASE`` replaces
every vendor URL by ``BASE/<the vendor's file name>`` - image, checksum file and detached
signature alike - and changes nothing about verification.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from imagefactory import settings
from imagefactory.errors import SpecError
from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.checksums import (
    ChecksumFormat,
    find_checksum,
    is_clearsigned,
    parse_checksums,
)
from imagefactory.fetch.download import Downloader
from imagefactory.fetch.download_errors import check_mirror_url
from imagefactory.fetch.errors import ChecksumFileError, FetchError, VerificationError
from imagefactory.fetch.partfiles import remove_part
from imagefactory.fetch.progress import make_progress
from imagefactory.fetch.signature import verify_clearsigned, verify_detached
from imagefactory.run import require_tool, run
from imagefactory.spec.digest import Digest
from imagefactory.spec.source import CloudImageSource

log = structlog.get_logger(__name__)

MIRROR_ENV = settings.MIRROR.name


@dataclass(frozen=True)
class FetchResult:
    """A verified image in the cache; `downloaded` is False for a cache hit."""

    path: Path
    digest: Digest
    size: int
    downloaded: bool


def _file_name(url: str) -> str:
    return posixpath.basename(urlsplit(url).path)


def _on_mirror(base: str, url: str) -> str:
    return base.rstrip("/") + "/" + _file_name(url)


def resolve_site_mirror(explicit: str | None) -> str | None:
    """The ``--mirror`` value, else ``$IMAGEFACTORY_MIRROR``, else None (vendor URLs)."""
    value = explicit if explicit is not None else settings.MIRROR.value()
    if not (value or "").strip():
        return None
    assert value is not None
    return check_mirror_url(value, "--mirror" if explicit is not None else f"${MIRROR_ENV}")


def _key_file(keys_dir: Path, keyring: str) -> Path:
    if not keyring or Path(keyring).name != keyring or keyring in (".", ".."):
        raise SpecError(f"signature.keyring must be a file name in keys/, got {keyring!r}")
    return keys_dir / keyring


def expected_digest(
    source: CloudImageSource,
    downloader: Downloader,
    cache: ImageCache,
    *,
    site_mirror: str | None,
    keys_dir: Path,
) -> tuple[Digest, int | None]:
    """The digest (and size, if the vendor lists it) the image must have."""
    if source.digest is not None:
        return source.digest, None
    checksum = source.checksum
    assert checksum is not None  # the spec model guarantees digest xor checksum
    url = _on_mirror(site_mirror, checksum.url) if site_mirror else checksum.url
    raw = downloader.fetch_small(url, cache.http_dir)
    fmt: ChecksumFormat = checksum.format
    signature = source.signature
    with tempfile.TemporaryDirectory(prefix="imagefactory-checksum-") as tmp:
        checksum_path = Path(tmp) / checksum.file_name
        checksum_path.write_bytes(raw)
        if signature is None:
            body = raw
            if is_clearsigned(raw.decode("utf-8", "replace")):
                log.warning("fetch.signature_unchecked", url=url, reason="no key pinned in spec")
        elif signature.kind == "detached":
            assert signature.url is not None
            sig_url = _on_mirror(site_mirror, signature.url) if site_mirror else signature.url
            sig_path = Path(tmp) / (_file_name(sig_url) or "signature")
            sig_path.write_bytes(downloader.fetch_small(sig_url, cache.http_dir))
            verify_detached(
                checksum_path,
                sig_path,
                key_file=_key_file(keys_dir, signature.keyring),
                fingerprints=signature.fingerprints,
            )
            body = raw
        else:
            body = verify_clearsigned(
                checksum_path,
                key_file=_key_file(keys_dir, signature.keyring),
                fingerprints=signature.fingerprints,
            )
            fmt = "auto" if fmt == "clearsigned" else fmt
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ChecksumFileError(f"{url} is not text; is it really a checksum file?") from None
    try:
        entries = parse_checksums(text, fmt, algorithm=checksum.algorithm)
        entry = find_checksum(entries, source.file_name, algorithm=checksum.algorithm)
    except ChecksumFileError as exc:
        raise ChecksumFileError(f"{checksum.file_name} ({url}): {exc}", hint=exc.hint) from exc
    if entry.algorithm == "sha256":
        digest = Digest("sha256", entry.hexdigest)
    elif entry.algorithm == "sha512":
        digest = Digest("sha512", entry.hexdigest)
    else:
        raise ChecksumFileError(f"{source.file_name}: unsupported algorithm {entry.algorithm}")
    log.info("fetch.expected", file=source.file_name, digest=str(digest), checksum_url=url)
    return digest, entry.size


def check_image_format(path: Path, expected: str) -> str:
    """Confirm with ``qemu-img info`` that the image is in the `expected` format.

    Also refuses images with a backing file or an external data file: a vendor image is
    self-contained, and one that is not would make later stages read files on the host.
    """
    qemu_img = require_tool("qemu-img", package="qemu-utils")
    proc = run(
        [qemu_img, "info", "--force-share", "--output=json", path],
        hint="qemu-img could not read the downloaded image",
    )
    info = json.loads(proc.stdout)
    actual = str(info.get("format"))
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise VerificationError(f"{path.name} has a backing file; refusing a non-standalone image")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise VerificationError(f"{path.name} uses an external data file; refusing it")
    if actual != expected:
        raise SpecError(
            f"the image is {actual}, but the spec says format: {expected}",
            hint=f"set source.cloud_image.format to {actual} in the spec",
        )
    return actual


def fetch_cloud_image(
    source: CloudImageSource,
    cache: ImageCache,
    *,
    site_mirror: str | None = None,
    keys_dir: Path,
    progress: bool | None = None,
    downloader: Downloader | None = None,
) -> FetchResult:
    """Return the verified image in the cache, downloading it only if it is not there.

    `site_mirror` None means ``$IMAGEFACTORY_MIRROR`` if set; `progress` None means a bar on a
    TTY and periodic log events otherwise.  Concurrent calls for the same image (threads or
    processes) download it once: the others wait on the object's lock and reuse it.
    """
    downloader = downloader or Downloader()
    mirror = resolve_site_mirror(site_mirror)
    urls = [_on_mirror(mirror, source.url)] if mirror else [source.url, *source.mirrors]
    try:
        expected, size = expected_digest(
            source, downloader, cache, site_mirror=mirror, keys_dir=keys_dir
        )
    except FetchError as exc:
        expected, size = _last_known(source, cache, exc), None

    path = cache.get(expected)
    if path is None:
        with cache.lock(str(expected)):
            path = cache.get(expected)  # another process may have fetched it while we waited
            if path is None:
                path = _download(source, cache, downloader, urls, expected, size, progress)
                check_image_format(path, source.format)
                return FetchResult(path, expected, path.stat().st_size, downloaded=True)
    check_image_format(path, source.format)
    log.info("fetch.cache_hit", file=source.file_name, digest=str(expected), path=str(path))
    return FetchResult(path, expected, path.stat().st_size, downloaded=False)


def _last_known(source: CloudImageSource, cache: ImageCache, error: FetchError) -> Digest:
    """Offline fallback: the image last verified for this URL, if it is still cached."""
    digest = cache.lookup(source.url)
    if digest is None or cache.get(digest) is None:
        raise error
    log.warning(
        "fetch.offline",
        file=source.file_name,
        digest=str(digest),
        reason=str(error),
        note="checksum file unreachable; using the image last verified for this URL",
    )
    return digest


def _download(
    source: CloudImageSource,
    cache: ImageCache,
    downloader: Downloader,
    urls: list[str],
    expected: Digest,
    size: int | None,
    progress: bool | None,
) -> Path:
    part = cache.part_path(expected)
    sink = make_progress(source.file_name, progress)
    try:
        result = downloader.download_verified(
            urls, part, expected, expected_size=size, progress=sink
        )
    finally:
        sink.close()
    path = cache.insert(part, expected, keys=[source.url, result.url])
    remove_part(part)  # the part itself was renamed; this drops its validator sidecar
    return path
