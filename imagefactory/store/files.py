"""The files store: qcow2 goldens in one directory, for hosts without a ZFS pool.

Layout (see `names.py`): the golden `<leaf>.qcow2` (mode 0444) with its manifest
`<leaf>.json`; build volumes, retired goldens and clones as `<leaf>.<kind>-<id>.*`.  Every
object's manifest is its role marker: without one (or with another role) the store does
not touch a file.

Why clones pin their golden with a hard link: a qcow2 overlay names its backing file by
path, so if overlays pointed at `<leaf>.qcow2`, the next publish would silently swap the
data under every existing clone.  Each clone instead gets `<clone>.origin.qcow2`, a hard
link to the golden's inode at clone time, and its overlay names that.  A golden's clones
are the clones whose origin link shares its inode; renaming or retiring the golden never
affects them, the way a zfs clone does not care about its origin's name.

Publishing, with the store lock held (crash points in brackets):
1. the build image is fsynced; the build's manifest is replaced by the golden's manifest,
   which records the image's inode; the image is made read-only  [files.publish.pending]
2. if a golden exists: its retired manifest is written, then the retired name is
   hard-linked to its image  [files.publish.retired-manifest] [files.publish.retired-link]
3. COMMIT: the build image is renamed over `<leaf>.qcow2`  [files.publish.committed]
4. the pending manifest is renamed over `<leaf>.json`.
A manifest counts only if its recorded inode is the image's, so readers never pair a new
image with an old manifest.  After a crash, recovery undoes steps 1-2 (the old golden was
never replaced) or finishes step 4.  The golden's manifest also records the image's
SHA-256, so a copied store's goldens (new inodes) can be trusted again once checked
(files_layout.py, files_integrity.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imagefactory.atomic import fsync_dir, fsync_file
from imagefactory.log import get_logger
from imagefactory.store import qemu_img
from imagefactory.store.base import (
    ROLE_BUILD,
    ROLE_CLONE,
    ROLE_GOLDEN,
    ROLE_RETIRED,
    AlreadyInStore,
    BuildVolume,
    Child,
    Clone,
    Golden,
    NotInStore,
    Provenance,
    StoreError,
)
from imagefactory.store.crashpoints import crashpoint
from imagefactory.store.files_integrity import damage_report, file_digest, pin_moved
from imagefactory.store.files_layout import (
    FORMAT,
    FilesLayout,
    ImageHash,
    Live,
    Manifest,
    now_iso,
)
from imagefactory.store.manifest import (
    read_manifest,
    stale_temp_files,
    temp_path,
    write_manifest,
)
from imagefactory.store.names import (
    ParsedName,
    build_child,
    check_leaf,
    clone_child,
    new_clone_id,
    parse_child,
)
from imagefactory.store.owner import current_owner
from imagefactory.store.safety import UnsafeOperation, check_plain_file

log = get_logger(__name__)


def _identity(image: Path) -> tuple[int, int, int]:
    st = image.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


class FileStore(FilesLayout):
    """Goldens as read-only qcow2 files plus JSON manifests in one directory."""

    kind = "file"

    # --- build volumes -------------------------------------------------------------------

    def _build_volume(self, parsed: ParsedName, manifest: dict[str, Any]) -> BuildVolume:
        image = self._image(parsed.child)
        return BuildVolume(
            leaf=parsed.leaf,
            build_id=parsed.ident,
            name=str(image),
            path=image,
            format=FORMAT,
            size=int(manifest.get("virtual_size", 0)),
            store=self.spec,
            owner=str(manifest.get("owner", "")),
        )

    def create_build_volume(
        self, leaf: str, build_id: str, size: int, *, volblocksize: int | None = None
    ) -> BuildVolume:
        child = build_child(leaf, build_id)
        parsed = parse_child(child)
        assert parsed is not None
        if size <= 0:
            raise StoreError(f"build volume size must be positive, not {size}")
        image, manifest_path = self._image(child), self._manifest(child)
        with self._lock():
            if manifest_path.exists() or manifest_path.is_symlink() or image.is_symlink():
                raise AlreadyInStore(f"build volume {child} already exists in {self.spec}")
            if image.exists():
                raise AlreadyInStore(f"build volume {child} already exists in {self.spec}")
            manifest = self._build_manifest(parsed, size, current_owner())
            write_manifest(manifest_path, manifest)
            tmp = temp_path(image)
            try:
                qemu_img.create(tmp, FORMAT, size)
                tmp.replace(image)
            except BaseException:
                tmp.unlink(missing_ok=True)
                manifest_path.unlink(missing_ok=True)
                raise
            fsync_dir(self.root)
        log.info("store.build_volume.created", store=self.spec, name=child, size=size)
        return self._build_volume(parsed, manifest)

    def open_build_volume(self, leaf: str, build_id: str) -> BuildVolume | None:
        child = build_child(leaf, build_id)
        parsed = parse_child(child)
        assert parsed is not None
        with self._lock():
            self._recover_locked()
            manifest = read_manifest(self._manifest(child))
            if manifest is None or manifest.get("role") != ROLE_BUILD:
                return None
            if not self._consistent(parsed, manifest):
                return None
            if not check_plain_file(self._image(child), missing_ok=True):
                return None
            manifest = {**manifest, "owner": current_owner()}
            write_manifest(self._manifest(child), manifest)
        return self._build_volume(parsed, manifest)

    def _guard_build(self, volume: BuildVolume | str) -> tuple[ParsedName, dict[str, Any]]:
        name = volume.name if isinstance(volume, BuildVolume) else volume
        parsed = self._parse_object(name, {"build"})
        return parsed, self._marked(parsed, {ROLE_BUILD})

    def write_image(
        self, volume: BuildVolume, source: Path, *, source_format: str | None = None
    ) -> BuildVolume:
        parsed, manifest = self._guard_build(volume)
        fmt = source_format or qemu_img.detect_format(source)
        source_size = qemu_img.virtual_size(source, fmt)
        size = max(int(manifest.get("virtual_size", 0)), source_size)
        image = self._image(parsed.child)
        tmp = temp_path(image)
        try:
            # A fresh file rather than writing into the old one: qemu-img then knows the
            # target reads as zeros and writes only the image's data (sparse, no zero
            # clusters), and a crash mid-copy leaves the build volume as it was.
            qemu_img.convert(source, fmt, tmp, FORMAT)
            if size > source_size:
                qemu_img.resize(tmp, FORMAT, size)
            crashpoint("files.write.converted")
            with self._lock():
                parsed, manifest = self._guard_build(volume)
                check_plain_file(image, missing_ok=True)
                tmp.replace(image)
                manifest = {**manifest, "virtual_size": size}
                write_manifest(self._manifest(parsed.child), manifest)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("store.image.written", store=self.spec, name=parsed.child, source=str(source))
        return self._build_volume(parsed, manifest)

    def grow(self, volume: BuildVolume, size: int) -> BuildVolume:
        with self._lock():
            parsed, manifest = self._guard_build(volume)
            image = self._image(parsed.child)
            check_plain_file(image)
            current = qemu_img.virtual_size(image, FORMAT)
            if size < current:
                raise StoreError(
                    f"cannot shrink {parsed.child} from {current} to {size} bytes",
                    hint="build volumes only grow; raise the spec's disk size instead",
                )
            if size > current:
                qemu_img.resize(image, FORMAT, size)
            manifest = {**manifest, "virtual_size": max(size, current)}
            write_manifest(self._manifest(parsed.child), manifest)
        return self._build_volume(parsed, manifest)

    def destroy_build_volume(self, volume: BuildVolume | str) -> None:
        with self._lock():
            self._recover_locked()
            parsed, _ = self._guard_build(volume)
            self._remove_child(parsed.child)
        log.info("store.build_volume.destroyed", store=self.spec, name=parsed.child)

    # --- goldens -------------------------------------------------------------------------

    def list_goldens(self, *, include_retired: bool = False) -> list[Golden]:
        origins = self._clone_origins()
        leaves = sorted({child.parsed.leaf for child in self.scan()})
        goldens = []
        for leaf in leaves:
            live = self._live(leaf, locked=False)
            if live is not None:
                goldens.append(
                    self._golden(leaf, live.manifest, live.image, origins, moved=live.moved)
                )
        if include_retired:
            for parsed, m, image in self._retired():
                goldens.append(self._golden(parsed.leaf, m, image, origins))
        goldens.sort(key=lambda g: (g.leaf, g.retired, -g.created.timestamp()))
        return goldens

    def get_golden(self, leaf: str) -> Golden | None:
        check_leaf(leaf)
        live = self._live(leaf, locked=False)
        if live is None:
            return None
        return self._golden(
            leaf, live.manifest, live.image, self._clone_origins(), moved=live.moved
        )

    def damaged(self) -> dict[str, str]:
        return damage_report(self)

    def _require_live(self, leaf: str) -> Live:
        """The live golden `leaf` (lock held), or why there is none: damaged, or absent."""
        live = self._live(leaf, locked=True)
        if live is None:
            reason = self.damaged().get(leaf)
            if reason is not None:
                raise StoreError(f"golden {leaf} in {self.spec} is damaged: {reason}")
            raise NotInStore(f"no golden {leaf} in {self.spec}")
        return live

    def verify(self, leaf: str) -> str:
        check_leaf(leaf)
        with self._lock():
            self._recover_locked()
            live = self._require_live(leaf)
            return pin_moved(self, live)

    def contains(self, path: Path) -> bool:
        try:
            return path.parent.resolve() == self.root and path.name.endswith(".qcow2")
        except (OSError, RuntimeError):
            return False

    # --- publish (the protocol is StoreBackend.publish) -------------------------------

    def _prepare_publish(self, parsed: ParsedName) -> ImageHash:
        # Hashed before taking the store lock (the build volume is this build's alone): the
        # digest is what lets a copied store's golden be trusted again (`verify`).
        image = self._image(parsed.child)
        check_plain_file(image)
        return ImageHash(_identity(image), file_digest(image))

    def _has_golden(self, leaf: str) -> bool:
        return self._live(leaf, locked=True) is not None

    def _seal(
        self,
        parsed: ParsedName,
        provenance: Provenance,
        prepared: ImageHash,
        replaces: str | None,
    ) -> None:
        """Step 1 of the module docstring; the golden manifest waits under the build's name
        (recovery knows a pending publish by it: a build name with the golden role)."""
        image = self._image(parsed.child)
        build_manifest = self._marked(parsed, {ROLE_BUILD})
        check_plain_file(image)
        if _identity(image) != prepared.identity:
            raise StoreError(f"{parsed.child} changed while it was being published")
        fsync_file(image)
        props = provenance.to_properties()
        props.pop("role", None)
        golden_manifest = {
            "role": ROLE_GOLDEN,
            "leaf": parsed.leaf,
            "build_id": parsed.ident,
            "owner": build_manifest.get("owner", ""),
            "inode": image.stat().st_ino,
            "image_digest": prepared.digest,
            "virtual_size": qemu_img.virtual_size(image, FORMAT),
            "created_at": build_manifest.get("created_at", now_iso()),
            "published_at": now_iso(),
            "provenance": props,
        }
        write_manifest(self._manifest(parsed.child), golden_manifest, mode=0o444)
        image.chmod(0o444)
        crashpoint("files.publish.pending")

    def _retire_golden(self, leaf: str, retired: str) -> None:
        """Step 2: the retired manifest first, then a hard link (the golden keeps its name
        until the commit).  A moved golden is pinned as it retires: no new clone is ever
        made of a retired one, so nothing is trusted that was not before."""
        live = self._live(leaf, locked=True)
        assert live is not None
        write_manifest(
            self._manifest(retired),
            {
                **live.manifest,
                "role": ROLE_RETIRED,
                "retired_at": now_iso(),
                "inode": live.image.stat().st_ino,
            },
            mode=0o444,
        )
        crashpoint("files.publish.retired-manifest")
        os.link(live.image, self._image(retired))
        fsync_dir(self.root)
        crashpoint("files.publish.retired-link")

    def _commit(self, parsed: ParsedName) -> None:
        """Steps 3 (the commit point: the image's rename) and 4."""
        self._image(parsed.child).replace(self._image(parsed.leaf))
        crashpoint("files.publish.committed")
        self._manifest(parsed.child).replace(self._manifest(parsed.leaf))
        fsync_dir(self.root)

    # --- clones --------------------------------------------------------------------------

    def clone(self, leaf: str, clone_id: str | None = None) -> Clone:
        child = clone_child(leaf, clone_id or new_clone_id())
        parsed = parse_child(child)
        assert parsed is not None
        overlay, origin, manifest_path = (
            self._image(child),
            self._origin(child),
            self._manifest(child),
        )
        with self._lock():
            self._recover_locked()
            live = self._require_live(leaf)
            if any(p.exists() or p.is_symlink() for p in (overlay, origin, manifest_path)):
                raise AlreadyInStore(f"clone {child} already exists in {self.spec}")
            if live.moved:
                pin_moved(self, live)
                live = self._require_live(leaf)
                assert not live.moved
            golden_manifest, golden_image = live.manifest, live.image
            manifest = {
                "role": ROLE_CLONE,
                "leaf": leaf,
                "clone_id": parsed.ident,
                "owner": current_owner(),
                "origin": str(golden_image),
                "origin_build_id": golden_manifest.get("build_id", ""),
                "created_at": now_iso(),
            }
            write_manifest(manifest_path, manifest)
            os.link(golden_image, origin)
            crashpoint("files.clone.pinned")
            tmp = temp_path(overlay)
            try:
                # Written in the store's temporary directory, where `origin.name` (relative,
                # resolved next to the overlay once in place) does not exist: hence the size.
                qemu_img.create(
                    tmp,
                    FORMAT,
                    int(golden_manifest.get("virtual_size", 0))
                    or qemu_img.virtual_size(golden_image, FORMAT),
                    backing=origin.name,
                    backing_format=FORMAT,
                    unsafe=True,
                )
                tmp.replace(overlay)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(self.root)
        log.info("store.cloned", store=self.spec, golden=leaf, clone=child)
        return self._clone_object(parsed, manifest)

    def list_clones(self, leaf: str | None = None) -> list[Clone]:
        return [
            self._clone_object(child.parsed, child.record)
            for child in self.scan()
            if child.parsed.kind == "clone"
            and child.role == ROLE_CLONE
            and (leaf is None or child.parsed.leaf == leaf)
            and self._finished(child)
        ]

    def destroy_clone(self, clone: Clone | str) -> None:
        name = clone.name if isinstance(clone, Clone) else clone
        parsed = self._parse_object(name, {"clone"})
        with self._lock():
            self._marked(parsed, {ROLE_CLONE})
            self._remove_child(parsed.child)
        log.info("store.clone.destroyed", store=self.spec, clone=parsed.child)

    # --- gc (the rules are StoreBackend.gc) --------------------------------------------

    def _owner(self, child: Child[Manifest]) -> str:
        return str(child.record.get("owner", ""))

    def _dependents(self, children: list[Child[Manifest]]) -> dict[str, int]:
        origins = self._clone_origins(children)
        dependents = {}
        for child in children:
            inode = self._inode(self._image(child.parsed.child))
            if child.parsed.kind == "retired" and inode is not None:
                dependents[child.parsed.child] = len(origins.get(inode, []))
        return dependents

    def _collect(self, child: Child[Manifest], *, dry_run: bool) -> str | None:
        """A child whose files turn out not to be plain files (a symlink put there) is
        kept, and said why."""
        name = child.parsed.child
        try:
            for path in (self._image(name), self._origin(name), self._manifest(name)):
                check_plain_file(path, missing_ok=True)
        except UnsafeOperation as exc:
            return str(exc)
        if not dry_run:
            self._remove_child(name)
        return None

    def _collect_leftovers(self, *, dry_run: bool) -> list[str]:
        """The store's own temporary files of dead writers (see `manifest.py`)."""
        return stale_temp_files(self.root, dry_run=dry_run)
