"""The build's first stage: the base image, downloaded and verified or bootstrapped.

Its output is the source image's path and digest, and with them the golden's identity is
complete (builder/identity.py).  The image cache is content-addressed, so the stage has a
key (a pinned digest, or the bootstrap recipe's inputs) and is skipped when the image is
cached under it; `imagefactory plan` asks the same key without a build (FetchContext).
"""

from __future__ import annotations

from dataclasses import dataclass

from imagefactory.builder.context import BuildContext, FetchContext
from imagefactory.builder.identity import golden_identity
from imagefactory.errors import UsageError
from imagefactory.fetch.bootstrap import bootstrap_cache_key, ensure_bootstrap_image
from imagefactory.fetch.disk_image import Firmware
from imagefactory.fetch.image import fetch_cloud_image
from imagefactory.paths import keys_dir
from imagefactory.spec.digest import Digest
from imagefactory.spec.model import DistroSpec, Lineage
from imagefactory.spec.source import BootstrapSource
from imagefactory.store.crashpoints import crashpoint

# The bootstrap base image is small; the volume stage grows it to the lineage's disk size
# and cloud-init's growpart extends the root on first boot.
BOOTSTRAP_BASE_SIZE = 4 * 1024**3


@dataclass(frozen=True)
class BootstrapRequest:
    """Everything that picks a spec's bootstrap image in the cache, but the mirror."""

    source: BootstrapSource
    firmware: Firmware
    size_bytes: int


def bootstrap_request(spec: DistroSpec, kind: Lineage) -> BootstrapRequest | None:
    """What a build of `spec`'s `kind` lineage bootstraps from (None: no bootstrap source).
    Anything that wants the very same image -- the tests' ZFS host boots the ztest one --
    asks here, so it lands on the build's cache entry."""
    boot = spec.source.bootstrap
    if boot is None:
        return None
    return BootstrapRequest(boot.for_lineage(kind), spec.vm.firmware, BOOTSTRAP_BASE_SIZE)


class FetchStep:
    """Download and verify the base image, or bootstrap it from the package mirror."""

    name = "fetch"

    def key(self, ctx: FetchContext) -> str | None:
        """The image's cache key: a pinned digest, or the bootstrap recipe's inputs.  An
        unpinned cloud image has none: the vendor's checksum file says what is current."""
        if ctx.source_kind == "cloud_image":
            source = ctx.resolved.spec.source.cloud_image
            return f"cloud_image:{source.digest}" if source and source.digest else None
        request = self._bootstrap(ctx)
        return bootstrap_cache_key(
            request.source,
            firmware=request.firmware,
            size_bytes=request.size_bytes,
            mirror=ctx.options.package_mirror,
        )

    def restore(self, ctx: FetchContext, key: str) -> bool:
        """Take the image cached under `key`, if it is there and intact."""
        crashpoint("build.fetch")  # a cached fetch is still the fetch stage (crash tests)
        pinned = key.removeprefix("cloud_image:")
        digest = Digest.parse(pinned) if pinned != key else ctx.cache.lookup(key)
        path = ctx.cache.get(digest) if digest is not None else None
        if digest is None or path is None:
            return False
        ctx.image_path, ctx.image_digest = path, digest
        _settle_identity(ctx)
        return True

    def _bootstrap(self, ctx: FetchContext) -> BootstrapRequest:
        spec = ctx.resolved.spec
        request = bootstrap_request(spec, ctx.resolved.lineage)
        if request is None:
            raise UsageError(
                f"{spec.name} has no bootstrap source",
                hint="bootstrap builds exist for Debian-family specs (e.g. debian13)",
            )
        return request

    def run(self, ctx: BuildContext) -> None:
        spec = ctx.resolved.spec
        crashpoint("build.fetch")
        if ctx.source_kind == "cloud_image":
            source = spec.source.cloud_image
            if source is None:
                raise UsageError(f"{spec.name} has no cloud_image source")
            result = fetch_cloud_image(
                source,
                ctx.cache,
                site_mirror=ctx.options.site_mirror,
                keys_dir=keys_dir(),
                progress=ctx.options.progress,
            )
            ctx.image_path, ctx.image_digest = result.path, result.digest
        else:
            request = self._bootstrap(ctx)
            ctx.image_path, ctx.image_digest = ensure_bootstrap_image(
                request.source,
                ctx.cache,
                firmware=request.firmware,
                size_bytes=request.size_bytes,
                mirror=ctx.options.package_mirror,
            )
        _settle_identity(ctx)

    def cleanup(self, ctx: BuildContext) -> None:
        """Nothing to undo: the cache only ever holds verified images."""


def _settle_identity(ctx: FetchContext) -> None:
    """With the source image known, every input of the golden is: its identity is complete."""
    assert ctx.plan is not None and ctx.image_digest is not None
    ctx.identity = golden_identity(
        ctx.resolved,
        ctx.plan,
        source_digest=str(ctx.image_digest),
        bootstrapped=ctx.source_kind == "bootstrap",
    )
