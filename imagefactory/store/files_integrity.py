"""Whether a files store's goldens are intact: digests, moved goldens, damaged manifests.

A golden's manifest records the SHA-256 of its image at publish.  A copied or restored
store keeps the bytes but not the inode numbers that pin each manifest to its image, so
its goldens show as `moved`: `imagefactory verify` (or the first clone, i.e. `klab test`)
hashes the image once and, if the digest matches, pins the manifest to the new inode.
A golden whose files are there but whose manifest is not usable is `damaged`, with the
reason, rather than silently absent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from imagefactory.errors import EXIT_TEST_FAILURES
from imagefactory.log import get_logger
from imagefactory.store.base import ROLE_GOLDEN, StoreError
from imagefactory.store.files_layout import FilesLayout, Live
from imagefactory.store.manifest import ManifestError, load_manifest, write_manifest
from imagefactory.store.names import ParsedName, parse_child

log = get_logger(__name__)


class GoldenCorrupt(StoreError):
    """A golden's image does not have the digest its manifest recorded."""

    exit_status = EXIT_TEST_FAILURES


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return f"sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"


def pin_moved(layout: FilesLayout, live: Live) -> str:
    """Check a live golden against its recorded digest (the store lock held); pin a moved
    one to its new inode, or record the digest an older manifest lacks.  Says what it did."""
    leaf = str(live.manifest.get("leaf"))
    recorded = live.manifest.get("image_digest")
    if recorded is None and live.moved:
        raise StoreError(
            f"golden {leaf} was moved (copied or restored) and its manifest records no "
            "digest to check it against (published by an older imagefactory)",
            hint=f"rebuild it: klab golden ... --force (or remove {live.image})",
        )
    actual = file_digest(live.image)
    if recorded is not None and actual != recorded:
        raise GoldenCorrupt(
            f"golden {leaf}: {live.image} has digest {actual}, its manifest says {recorded}",
            hint="the image is damaged or not this golden's: rebuild it",
        )
    if recorded is not None and not live.moved:
        return "ok: the image's digest matches its manifest"
    manifest = {**live.manifest, "image_digest": actual, "inode": live.image.stat().st_ino}
    write_manifest(layout._manifest(leaf), manifest, mode=0o444)
    if live.moved:
        log.warning("store.golden.repinned", golden=leaf, digest=actual)
        return "moved: the image's digest matches its manifest; pinned to this copy"
    return "ok: the image's digest is now recorded in its manifest"


def damage_report(layout: FilesLayout) -> dict[str, str]:
    """Goldens whose image or manifest is there but which are not usable: leaf → why."""
    leaves: set[str] = set()
    for entry in layout._entries():
        for suffix in (".qcow2", ".json"):
            if entry.endswith(suffix) and not entry.endswith(".origin.qcow2"):
                parsed = parse_child(entry[: -len(suffix)])
                if parsed is not None and parsed.kind == "golden":
                    leaves.add(parsed.leaf)
    damaged = {}
    for leaf in sorted(leaves):
        if layout._live(leaf, locked=False) is not None:
            continue
        reason = _why_not_live(layout, leaf)
        if reason is not None:
            damaged[leaf] = reason
    return damaged


def _why_not_live(layout: FilesLayout, leaf: str) -> str | None:
    image, path = layout._image(leaf), layout._manifest(leaf)
    has_image = layout._inode(image) is not None
    try:
        manifest = load_manifest(path)
    except ManifestError as exc:
        return f"unusable manifest: {exc}"
    if manifest is None:
        if image.is_symlink():
            return f"{image.name} is a symbolic link"
        return f"{image.name} has no manifest" if has_image else None
    if not layout._consistent(ParsedName(leaf=leaf, kind="golden", ident=""), manifest):
        return f"{path.name} describes {manifest.get('leaf')!r}, not this golden"
    if manifest.get("role") != ROLE_GOLDEN:
        return f"{path.name} has role {manifest.get('role')}, not golden"
    if not has_image:
        # An image removed by hand leaves exactly this; the next store operation drops
        # the manifest (files_layout._recover_locked).
        return None
    return "its manifest does not match its image"
