"""Every real distro spec, fetched through a flat site mirror holding vendor-format files.

The mirror serves a small stand-in image under the vendor's file name and a checksum file in
that vendor's exact format, so each spec's checksum settings (file name, format, algorithm)
are exercised as written.  The two signed specs pin the vendors' real keys from keys/; a
checksum file signed by any other key must be refused before the image is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.download import Downloader, RetryPolicy
from imagefactory.fetch.errors import SignatureError
from imagefactory.fetch.image import FetchResult, fetch_cloud_image
from imagefactory.paths import keys_dir
from imagefactory.spec import all_distro_names, load_distro
from imagefactory.spec.source import CloudImageSource
from tests.fixtures.fault_http import FaultServer
from tests.fixtures.gpg_keys import ThrowawayKeys


def vendor_checksum_file(source: CloudImageSource, image: bytes) -> str:
    """The checksum file as this vendor writes it (reference/distros.md §2.6)."""
    assert source.checksum is not None
    algorithm = source.checksum.algorithm or "sha256"
    hexdigest = hashlib.new(algorithm, image).hexdigest()
    name = source.file_name
    if source.checksum.format in ("bsd", "clearsigned"):  # CentOS, Rocky, Fedora
        return f"# {name}: {len(image)} bytes\n{algorithm.upper()} ({name}) = {hexdigest}\n"
    if algorithm == "sha512":  # Debian SHA512SUMS: text mode
        return f"{'0' * 128}  debian-13-genericcloud-amd64.json\n{hexdigest}  {name}\n"
    return f"{'0' * 64} *noble-server-cloudimg-amd64.vmdk\n{hexdigest} *{name}\n"  # Ubuntu


def file_name(url: str) -> str:
    return posixpath.basename(urlsplit(url).path)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    work = tmp_path_factory.mktemp("distro-img")
    (work / "d.raw").write_bytes(os.urandom(1 << 20))
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", work / "d.raw", work / "d.q"], check=True)
    return (work / "d.q").read_bytes()


@pytest.mark.parametrize("distro", all_distro_names())
def test_distro_spec_fetches_through_a_site_mirror(
    distro: str,
    image: bytes,
    fault_server: FaultServer,
    gpg_keys: ThrowawayKeys,
    tmp_path: Path,
) -> None:
    source = load_distro(distro, env={}).spec.source.cloud_image
    if source is None or source.checksum is None:
        pytest.skip(f"{distro} has no checksum-file cloud image source")
    fault_server.put(f"site/{source.file_name}", image)
    body = tmp_path / file_name(source.checksum.url)
    body.write_text(vendor_checksum_file(source, image))
    signature = source.signature
    if signature is not None and signature.kind == "clearsigned":
        signed = gpg_keys.clearsign(body, gpg_keys.trusted, tmp_path / "signed")
        fault_server.put(f"site/{body.name}", signed.read_bytes())
    else:
        fault_server.put(f"site/{body.name}", body.read_bytes())
    if signature is not None and signature.kind == "detached":
        assert signature.url is not None
        sig = gpg_keys.sign_detached(body, gpg_keys.trusted, tmp_path / "sig")
        fault_server.put(f"site/{file_name(signature.url)}", sig.read_bytes())

    cache = ImageCache(tmp_path / "cache")
    downloader = Downloader(policy=RetryPolicy(attempts=1))

    def fetch() -> FetchResult:
        return fetch_cloud_image(
            source,
            cache,
            site_mirror=fault_server.url("site"),
            keys_dir=keys_dir(),
            progress=False,
            downloader=downloader,
        )

    if signature is not None:
        # Signed by a key the spec does not pin: refused, and the image is never requested.
        with pytest.raises(SignatureError, match="not pinned"):
            fetch()
        assert fault_server.requests_for(f"site/{source.file_name}") == []
        return
    result = fetch()
    assert result.downloaded
    assert result.path.read_bytes() == image
    assert all(r.path.startswith("/site/") for r in fault_server.log)
