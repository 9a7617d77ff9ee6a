"""fetch_cloud_image end to end: loopback vendor, real qemu-img, real gpg, real cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from imagefactory.errors import SpecError
from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.download import Downloader, RetryPolicy
from imagefactory.fetch.errors import (
    ChecksumFileError,
    ChecksumMismatchError,
    DiskFullError,
    FetchError,
    SignatureError,
)
from imagefactory.fetch.image import FetchResult, fetch_cloud_image
from imagefactory.spec.source import CloudImageSource
from tests.fixtures.fault_http import Delay, Drop, FaultServer, NoLength
from tests.fixtures.gpg_keys import ThrowawayKeys

IMAGE = "noble-server-cloudimg-amd64.img"


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small real qcow2 image with random content (3 MiB of data)."""
    work = tmp_path_factory.mktemp("qcow2")
    raw = work / "disk.raw"
    raw.write_bytes(os.urandom(3 << 20))
    out = work / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, out], check=True)
    return out.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    return ImageCache(tmp_path / "cache")


@pytest.fixture
def downloader() -> Downloader:
    return Downloader(policy=RetryPolicy(attempts=3, backoff_multiplier=0.01, jitter=0.01))


@pytest.fixture
def vendor(fault_server: FaultServer, qcow2: bytes) -> FaultServer:
    """An Ubuntu-like directory: the image plus a GNU binary-mode SHA256SUMS."""
    fault_server.put(f"noble/current/{IMAGE}", qcow2)
    sums = f"{'ab' * 32} *noble-server-cloudimg-amd64.vmdk\n{sha256(qcow2)} *{IMAGE}\n"
    fault_server.put("noble/current/SHA256SUMS", sums.encode())
    return fault_server


def source(server: FaultServer, **fields: Any) -> CloudImageSource:
    data: dict[str, Any] = {"url": server.url(f"noble/current/{IMAGE}"), "format": "qcow2"}
    data.update(fields)
    return CloudImageSource.model_validate(data)


def checksum_source(server: FaultServer, **fields: Any) -> CloudImageSource:
    checksum = {"url": server.url("noble/current/SHA256SUMS"), "format": "gnu"}
    return source(server, checksum=checksum, **fields)


def fetch(
    src: CloudImageSource, cache: ImageCache, downloader: Downloader, **kw: Any
) -> FetchResult:
    kw.setdefault("keys_dir", Path("/nonexistent"))
    return fetch_cloud_image(src, cache, downloader=downloader, progress=False, **kw)


def image_gets(server: FaultServer, path: str = f"noble/current/{IMAGE}") -> int:
    return sum(1 for r in server.requests_for(path) if r.status in (200, 206))


def test_pinned_digest_second_fetch_downloads_nothing(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    src = source(vendor, digest=f"sha256:{sha256(qcow2)}")
    first = fetch(src, cache, downloader)
    assert first.downloaded
    assert first.path == cache.root / "sha256" / sha256(qcow2)
    assert first.path.read_bytes() == qcow2
    assert first.size == len(qcow2)
    requests_before = len(vendor.log)
    second = fetch(src, cache, downloader)
    assert (second.downloaded, second.path, second.digest) == (False, first.path, first.digest)
    assert len(vendor.log) == requests_before  # no network at all for a pinned digest
    assert cache.lookup(src.url) == first.digest


def test_checksum_file_source_revalidates_only_the_checksum_file(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    src = checksum_source(vendor)
    assert fetch(src, cache, downloader).downloaded
    assert not fetch(src, cache, downloader).downloaded
    assert image_gets(vendor) == 1
    sums = vendor.requests_for("noble/current/SHA256SUMS")
    assert [r.status for r in sums] == [200, 304]


def test_detached_signature_by_pinned_key(
    vendor: FaultServer,
    cache: ImageCache,
    downloader: Downloader,
    gpg_keys: ThrowawayKeys,
    tmp_path: Path,
) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(vendor.content("noble/current/SHA256SUMS"))
    sig = gpg_keys.sign_detached(sums, gpg_keys.trusted, tmp_path / "SHA256SUMS.gpg")
    vendor.put("noble/current/SHA256SUMS.gpg", sig.read_bytes())
    signature = {
        "kind": "detached",
        "url": vendor.url("noble/current/SHA256SUMS.gpg"),
        "keyring": gpg_keys.key_file.name,
        "fingerprints": [gpg_keys.trusted],
    }
    src = checksum_source(vendor, signature=signature)
    result = fetch(src, cache, downloader, keys_dir=gpg_keys.key_file.parent)
    assert result.downloaded


def clearsigned_vendor(
    server: FaultServer, qcow2: bytes, keys: ThrowawayKeys, signer: str, tmp_path: Path
) -> CloudImageSource:
    """A Fedora-like directory: BSD lines with size comments, clear-signed by `signer`."""
    name = "Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2"
    server.put(f"44/images/{name}", qcow2)
    body = tmp_path / "body"
    body.write_text(f"# {name}: {len(qcow2)} bytes\nSHA256 ({name}) = {sha256(qcow2)}\n")
    signed = keys.clearsign(body, signer, tmp_path / "CHECKSUM")
    server.put("44/images/Fedora-Cloud-44-1.7-x86_64-CHECKSUM", signed.read_bytes())
    return CloudImageSource.model_validate(
        {
            "url": server.url(f"44/images/{name}"),
            "checksum": {
                "url": server.url("44/images/Fedora-Cloud-44-1.7-x86_64-CHECKSUM"),
                "format": "clearsigned",
                "algorithm": "sha256",
            },
            "signature": {
                "kind": "clearsigned",
                "keyring": keys.key_file.name,
                "fingerprints": [keys.trusted],
            },
        }
    )


def test_clearsigned_checksum_by_pinned_key(
    fault_server: FaultServer,
    qcow2: bytes,
    cache: ImageCache,
    downloader: Downloader,
    gpg_keys: ThrowawayKeys,
    tmp_path: Path,
) -> None:
    src = clearsigned_vendor(fault_server, qcow2, gpg_keys, gpg_keys.trusted, tmp_path)
    result = fetch(src, cache, downloader, keys_dir=gpg_keys.key_file.parent)
    assert result.digest.hexdigest == sha256(qcow2)


def test_clearsigned_checksum_by_unpinned_key_stops_before_download(
    fault_server: FaultServer,
    qcow2: bytes,
    cache: ImageCache,
    downloader: Downloader,
    gpg_keys: ThrowawayKeys,
    tmp_path: Path,
) -> None:
    src = clearsigned_vendor(fault_server, qcow2, gpg_keys, gpg_keys.stranger, tmp_path)
    with pytest.raises(SignatureError, match="not pinned"):
        fetch(src, cache, downloader, keys_dir=gpg_keys.key_file.parent)
    assert image_gets(fault_server, f"44/images/{src.file_name}") == 0
    assert cache.entries() == []


def test_wrong_image_leaves_cache_untouched_and_no_part(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    vendor.put(f"noble/current/{IMAGE}", qcow2[:-1] + b"\x00")
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        fetch(checksum_source(vendor), cache, downloader)
    assert cache.entries() == []
    assert [p.name for p in cache.tmp_dir.iterdir() if p.name.endswith(".part")] == []


def test_image_missing_from_checksum_file(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader
) -> None:
    vendor.put("noble/current/SHA256SUMS", f"{'cd' * 32} *other.img\n".encode())
    with pytest.raises(ChecksumFileError, match=f"{IMAGE} is not listed"):
        fetch(checksum_source(vendor), cache, downloader)
    assert image_gets(vendor) == 0


def test_checksum_file_in_unknown_format(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader
) -> None:
    vendor.put("noble/current/SHA256SUMS", b"<html><body>Moved</body></html>\n")
    src = source(vendor, checksum={"url": vendor.url("noble/current/SHA256SUMS")})
    with pytest.raises(ChecksumFileError, match="unknown checksum file format"):
        fetch(src, cache, downloader)


def test_corrupted_cache_object_is_detected_and_fetched_again(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    src = source(vendor, digest=f"sha256:{sha256(qcow2)}")
    path = fetch(src, cache, downloader).path
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(len(qcow2) // 2)
        f.write(b"\xff\xfe")
    again = fetch(src, cache, downloader)
    assert again.downloaded
    assert again.path.read_bytes() == qcow2
    assert image_gets(vendor) == 2


def test_interrupted_download_resumes_and_succeeds(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    vendor.fault(f"noble/current/{IMAGE}", Drop(after=1 << 20))
    result = fetch(checksum_source(vendor), cache, downloader)
    assert result.path.read_bytes() == qcow2
    last = vendor.requests_for(f"noble/current/{IMAGE}")[-1]
    assert (last.status, last.headers["Range"]) == (206, f"bytes={1 << 20}-")


def test_two_concurrent_fetches_download_once(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    vendor.fault(f"noble/current/{IMAGE}", Delay(0.5))  # keep the first download in flight
    src = source(vendor, digest=f"sha256:{sha256(qcow2)}")
    results: list[FetchResult] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        results.append(fetch(src, cache, Downloader(policy=downloader.policy)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.downloaded for r in results) == [False, True]
    assert results[0].path == results[1].path
    assert image_gets(vendor) == 1


def test_site_mirror_serves_flat_files_with_the_same_verification(
    vendor: FaultServer,
    cache: ImageCache,
    downloader: Downloader,
    qcow2: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor.put(f"site/{IMAGE}", qcow2)
    vendor.put("site/SHA256SUMS", vendor.content("noble/current/SHA256SUMS"))
    src = checksum_source(vendor)
    monkeypatch.setenv("IMAGEFACTORY_MIRROR", vendor.url("site/"))
    result = fetch(src, cache, downloader)
    assert result.downloaded
    assert {r.path for r in vendor.log} == {f"/site/{IMAGE}", "/site/SHA256SUMS"}


def test_site_mirror_with_wrong_file_is_rejected(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    vendor.put(f"site/{IMAGE}", qcow2[::-1])
    vendor.put("site/SHA256SUMS", vendor.content("noble/current/SHA256SUMS"))
    with pytest.raises(ChecksumMismatchError):
        fetch(checksum_source(vendor), cache, downloader, site_mirror=vendor.url("site"))
    assert image_gets(vendor) == 0  # the vendor URL is never tried behind a site mirror
    assert cache.entries() == []


def test_spec_mirrors_are_tried_after_the_primary_url(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    vendor.put(f"mirror2/{IMAGE}", qcow2)
    src = source(
        vendor,
        url=vendor.url(f"gone/{IMAGE}"),
        mirrors=[vendor.url(f"mirror1/{IMAGE}"), vendor.url(f"mirror2/{IMAGE}")],
        digest=f"sha256:{sha256(qcow2)}",
    )
    assert fetch(src, cache, downloader).downloaded
    tried = [r.path for r in vendor.log]
    assert tried == [f"/gone/{IMAGE}", f"/mirror1/{IMAGE}", f"/mirror2/{IMAGE}"]


def test_format_other_than_the_spec_says_is_a_spec_error(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader, qcow2: bytes
) -> None:
    src = source(vendor, digest=f"sha256:{sha256(qcow2)}", format="raw")
    with pytest.raises(SpecError, match="the image is qcow2, but the spec says format: raw"):
        fetch(src, cache, downloader)


def test_offline_fetch_of_a_checksum_source_uses_the_stored_checksum_file(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader
) -> None:
    src = checksum_source(vendor)
    first = fetch(src, cache, downloader)
    vendor.close()
    second = fetch(src, cache, downloader)
    assert (second.downloaded, second.path) == (False, first.path)


def test_unreachable_vendor_without_cache_fails_with_one_line(
    cache: ImageCache, downloader: Downloader
) -> None:
    src = CloudImageSource.model_validate(
        {"url": f"http://127.0.0.1:9/{IMAGE}", "checksum": {"url": "http://127.0.0.1:9/SUMS"}}
    )
    with pytest.raises(FetchError, match="connection refused") as info:
        fetch(src, cache, downloader)
    assert "\n" not in str(info.value)


@pytest.mark.root
@pytest.mark.parametrize("send_length", [True, False], ids=["length-known", "no-length"])
def test_disk_full_leaves_nothing_in_the_cache(
    vendor: FaultServer, downloader: Downloader, qcow2: bytes, tiny_fs: Path, send_length: bool
) -> None:
    if not send_length:
        vendor.fault(f"noble/current/{IMAGE}", NoLength())  # fills the disk while writing
    cache = ImageCache(tiny_fs)
    src = source(vendor, digest=f"sha256:{sha256(qcow2)}")
    with pytest.raises(DiskFullError):
        fetch(src, cache, downloader)
    assert cache.entries() == []
    leftovers = [p for p in tiny_fs.rglob("*") if p.is_file() and "locks" not in p.parts]
    assert leftovers == []
    assert image_gets(vendor) == 1  # not retried


def test_offline_without_a_stored_checksum_file_falls_back_to_the_url_index(
    vendor: FaultServer, cache: ImageCache, downloader: Downloader
) -> None:
    src = checksum_source(vendor)
    first = fetch(src, cache, downloader)
    shutil.rmtree(cache.http_dir)  # no stored checksum file to fall back on
    vendor.close()
    second = fetch(src, cache, downloader)
    assert (second.downloaded, second.digest) == (False, first.digest)
