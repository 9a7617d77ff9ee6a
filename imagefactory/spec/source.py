"""Where a golden's base image comes from: a vendor cloud image, or a bootstrap from a mirror.

Checksum provenance is explicit: either a digest pinned in the spec, or the vendor's
checksum file (optionally signed) that is trusted only as far as its signature goes.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from imagefactory.spec.digest import Digest
from imagefactory.spec.types import HttpUrl, StrictModel

ChecksumFormat = Literal["auto", "gnu", "bsd", "clearsigned"]


def _debian_package(value: str) -> str:
    # What mmdebstrap's --include takes (the bootstrap's own check, fetch/bootstrap.py).
    if not re.fullmatch(r"[a-z0-9][a-z0-9+.~_:=/-]*", value):
        raise ValueError(f"not a package name: {value!r} (list one package per entry)")
    return value


DebianPackage = Annotated[str, AfterValidator(_debian_package)]


class ChecksumFile(StrictModel):
    """The vendor's checksum file; the image's file name is looked up in it."""

    url: HttpUrl
    format: ChecksumFormat = Field(
        "auto", description="gnu (`hex  name`), bsd (`SHA256 (name) = hex`), clearsigned (PGP)"
    )
    algorithm: Literal["sha256", "sha512"] | None = Field(
        None, description="the algorithm of the listed digests; auto-detected from length if unset"
    )

    @property
    def file_name(self) -> str:
        return posixpath.basename(urlsplit(self.url).path)


class Signature(StrictModel):
    """A GPG signature over the checksum file, checked against pinned fingerprints only."""

    kind: Literal["detached", "clearsigned"]
    url: HttpUrl | None = Field(None, description="the detached signature (.gpg/.sign/.asc)")
    keyring: str = Field(description="public key file shipped in the repository's keys/ directory")
    fingerprints: list[str] = Field(min_length=1, description="the only keys trusted to sign")

    @field_validator("keyring")
    @classmethod
    def _file_name(cls, value: str) -> str:
        if not value or posixpath.basename(value) != value or value in (".", ".."):
            raise ValueError(f"keyring must be a file name in keys/, got {value!r}")
        return value

    @model_validator(mode="after")
    def _detached_needs_url(self) -> Signature:
        if self.kind == "detached" and self.url is None:
            raise ValueError("a detached signature needs its url")
        if self.kind == "clearsigned" and self.url is not None:
            raise ValueError("a clear-signed checksum file carries its own signature: drop url")
        for fingerprint in self.fingerprints:
            compact = fingerprint.replace(" ", "")
            if len(compact) != 40 or any(c not in "0123456789abcdefABCDEF" for c in compact):
                raise ValueError(f"fingerprint must be 40 hex digits: {fingerprint!r}")
        return self

    @property
    def normalized_fingerprints(self) -> list[str]:
        return [f.replace(" ", "").upper() for f in self.fingerprints]


class CloudImageSource(StrictModel):
    """A vendor cloud image, with mirrors tried in order after the primary URL."""

    url: HttpUrl
    mirrors: list[HttpUrl] = Field(default_factory=list)
    format: Literal["qcow2", "raw"] = "qcow2"
    digest: Digest | None = Field(None, description="pinned sha256:<hex> or sha512:<hex>")
    checksum: ChecksumFile | None = None
    signature: Signature | None = None

    @model_validator(mode="after")
    def _one_checksum_source(self) -> CloudImageSource:
        if (self.digest is None) == (self.checksum is None):
            raise ValueError("give exactly one of digest (pinned) or checksum (vendor file)")
        if self.signature is not None and self.checksum is None:
            raise ValueError("a signature verifies a checksum file: add checksum")
        if (
            self.checksum is not None
            and self.signature is not None
            and (self.signature.kind == "clearsigned") != (self.checksum.format == "clearsigned")
            and self.checksum.format != "auto"
        ):
            raise ValueError("a clear-signed signature needs checksum.format clearsigned or auto")
        return self

    @property
    def file_name(self) -> str:
        return posixpath.basename(urlsplit(self.url).path)


class BootstrapSource(StrictModel):
    """A Debian-family base image built with mmdebstrap from a package mirror (air-gapped sites)."""

    suite: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    components: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9./-]*$")]] = Field(
        default_factory=lambda: ["main"], min_length=1
    )
    packages: list[DebianPackage] = Field(default_factory=list)
    kernel: DebianPackage = Field(description="kernel metapackage, e.g. linux-image-cloud-amd64")
    ztest_packages: list[DebianPackage] = Field(
        default_factory=list,
        description="added for the ztest lineage; DKMS modules among them are built at bootstrap "
        "for the image's kernel",
    )
    mirror: HttpUrl | None = Field(
        None, description="package mirror; default: the one in the host's apt configuration"
    )

    def for_lineage(self, kind: Literal["lean", "ztest"]) -> BootstrapSource:
        """The source one lineage bootstraps from: a ztest image is the lean one plus the
        ztest packages, so the ZFS module is compiled natively at bootstrap rather than by a
        hook under TCG.  Anything else that needs that image (the tests' ZFS host) asks here
        too, and so lands on the same cache entry instead of compiling ZFS a second time."""
        if kind != "ztest" or not self.ztest_packages:
            return self
        return self.model_copy(update={"packages": [*self.packages, *self.ztest_packages]})


class SourceSpec(StrictModel):
    """The spec's sources; `default` picks one unless the command line says otherwise."""

    default: Literal["cloud_image", "bootstrap"] = "cloud_image"
    cloud_image: CloudImageSource | None = None
    bootstrap: BootstrapSource | None = None

    @model_validator(mode="after")
    def _default_exists(self) -> SourceSpec:
        if getattr(self, self.default) is None:
            raise ValueError(f"default source is {self.default} but no {self.default} is given")
        return self
