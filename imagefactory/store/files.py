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

import structlog

from imagefactory.atomic import fsync_dir, fsync_file
from imagefactory.store import qemu_img
from imagefactory.store.base import (
    ROLE_BUILD,
    ROLE_CLONE,
    ROLE_GOLDEN,
    ROLE_RETIRED,
    AlreadyInStore,
    BuildVolume,
    Clone,
    GcReport,
    Golden,
    NotInStore,
    Provenance,
    Store,
    StoreError,
)
from imagefactory.store.crashpoints import crashpoint
from imagefactory.store.files_integrity import damage_report, file_digest, pin_moved
from imagefactory.store.files_layout import FORMAT, FilesLayout, Live, now_iso
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
    unique_retired_child,
)
from imagefactory.store.owner import current_owner, owner_alive
from imagefactory.store.safety import UnsafeOperation, check_plain_file, child_in_dir

log = structlog.get_logger(__name__)


class FileStore(FilesLayout, Store):
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

    def list_build_volumes(self) -> list[BuildVolume]:
        return [
            self._build_volume(parsed, m)
            for parsed, m in self._manifests()
            if parsed.kind == "build" and m.get("role") == ROLE_BUILD
        ]

    def _guard_build(self, volume: BuildVolume | str) -> tuple[ParsedName, dict[str, Any]]:
        name = volume.name if isinstance(volume, BuildVolume) else volume
        parsed = child_in_dir(self.root, name, {"build"})
        manifest = self._marked(parsed, {ROLE_BUILD})
        return parsed, manifest

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
        leaves = sorted({p.leaf for p, _ in self._manifests()})
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

    def publish(self, volume: BuildVolume, provenance: Provenance) -> Golden:
        parsed = child_in_dir(self.root, volume.name, {"build"})
        if provenance.build_id != parsed.ident:
            raise StoreError(
                f"provenance build_id {provenance.build_id!r} is not the build volume's "
                f"({parsed.ident!r})"
            )
        leaf, child = parsed.leaf, parsed.child
        image = self._image(child)
        # Hashed before taking the store lock (the build volume is this build's alone): the
        # digest is what lets a copied store's golden be trusted again (`verify`).
        check_plain_file(image)
        before = image.stat()
        digest = file_digest(image)
        with self._lock():
            self._recover_locked()
            build_manifest = self._marked(parsed, {ROLE_BUILD})
            check_plain_file(image)
            after = image.stat()
            if (after.st_ino, after.st_size, after.st_mtime_ns) != (
                before.st_ino,
                before.st_size,
                before.st_mtime_ns,
            ):
                raise StoreError(f"{child} changed while it was being published")
            fsync_file(image)
            props = provenance.to_properties()
            props.pop("role", None)
            golden_manifest = {
                "role": ROLE_GOLDEN,
                "leaf": leaf,
                "build_id": parsed.ident,
                "owner": build_manifest.get("owner", ""),
                "inode": image.stat().st_ino,
                "image_digest": digest,
                "virtual_size": qemu_img.virtual_size(image, FORMAT),
                "created_at": build_manifest.get("created_at", now_iso()),
                "published_at": now_iso(),
                "provenance": props,
            }
            write_manifest(self._manifest(child), golden_manifest, mode=0o444)
            image.chmod(0o444)
            crashpoint("files.publish.pending")
            live = self._live(leaf, locked=True)
            if live is not None:
                self._retire_locked(leaf, live, commit=False)
            image.replace(self._image(leaf))
            crashpoint("files.publish.committed")
            self._manifest(child).replace(self._manifest(leaf))
            fsync_dir(self.root)
        log.info("store.published", store=self.spec, golden=leaf, build_id=parsed.ident)
        golden = self.get_golden(leaf)
        assert golden is not None
        return golden

    def _retire_locked(self, leaf: str, live: Live, *, commit: bool) -> str:
        """Give the live golden a retired name (manifest first, then a hard link); with
        `commit`, also remove its golden name (image first: that is the commit point).
        A moved golden is pinned as it retires: no new clone is ever made of a retired one,
        so nothing is trusted that was not before."""
        manifest, image = live.manifest, live.image
        retired = unique_retired_child(leaf, self._taken())
        write_manifest(
            self._manifest(retired),
            {
                **manifest,
                "role": ROLE_RETIRED,
                "retired_at": now_iso(),
                "inode": image.stat().st_ino,
            },
            mode=0o444,
        )
        crashpoint("files.publish.retired-manifest" if not commit else "files.retire.manifest")
        os.link(image, self._image(retired))
        fsync_dir(self.root)
        crashpoint("files.publish.retired-link" if not commit else "files.retire.link")
        if commit:
            image.unlink()
            crashpoint("files.retire.committed")
            self._manifest(leaf).unlink()
            fsync_dir(self.root)
        return retired

    def retire(self, leaf: str) -> Golden:
        check_leaf(leaf)
        with self._lock():
            self._recover_locked()
            live = self._live(leaf, locked=True)
            if live is None:
                raise NotInStore(f"no golden {leaf} in {self.spec}")
            retired = self._retire_locked(leaf, live, commit=True)
        log.info("store.retired", store=self.spec, golden=leaf, retired=retired)
        manifest = read_manifest(self._manifest(retired))
        assert manifest is not None
        return self._golden(leaf, manifest, self._image(retired), self._clone_origins())

    # --- recovery ------------------------------------------------------------------------

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
            self._clone_object(parsed, m)
            for parsed, m in self._manifests()
            if parsed.kind == "clone"
            and m.get("role") == ROLE_CLONE
            and (leaf is None or parsed.leaf == leaf)
            and self._inode(self._image(parsed.child)) is not None
        ]

    def destroy_clone(self, clone: Clone | str) -> None:
        name = clone.name if isinstance(clone, Clone) else clone
        parsed = child_in_dir(self.root, name, {"clone"})
        with self._lock():
            self._marked(parsed, {ROLE_CLONE})
            self._remove_child(parsed.child)
        log.info("store.clone.destroyed", store=self.spec, clone=parsed.child)

    # --- gc ------------------------------------------------------------------------------

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """See `Store.gc`.  Only children with a consistent manifest (the role marker) and
        the store's own temporary files (see `manifest.py`) are candidates; a child whose
        files turn out not to be plain files (a symlink put there) is kept and reported."""
        report = GcReport()
        with self._lock():
            if not dry_run:
                self._recover_locked()
            origins = self._clone_origins()
            doomed: list[str] = []
            for parsed, m in list(self._manifests()):
                role = m.get("role")
                if parsed.kind == "build" and role == ROLE_BUILD:
                    if owner_alive(str(m.get("owner", ""))):
                        report.kept.append((parsed.child, "its build is still running"))
                        continue
                    doomed.append(parsed.child)
                elif parsed.kind == "clone" and role == ROLE_CLONE:
                    complete = self._inode(self._image(parsed.child)) is not None
                    if not complete and not owner_alive(str(m.get("owner", ""))):
                        doomed.append(parsed.child)
            for parsed, _, image in list(self._retired()):
                clones = origins.get(image.stat().st_ino, [])
                if clones:
                    report.kept.append((parsed.child, f"{len(clones)} clone(s) depend on it"))
                    continue
                doomed.append(parsed.child)
            for child in doomed:
                try:
                    for path in (self._image(child), self._origin(child), self._manifest(child)):
                        check_plain_file(path, missing_ok=True)
                except UnsafeOperation as exc:
                    report.kept.append((child, str(exc)))
                    continue
                report.removed.append(child)
                if not dry_run:
                    self._remove_child(child)
            report.removed += stale_temp_files(self.root, dry_run=dry_run)
        if report.removed:
            log.info("store.gc", store=self.spec, removed=report.removed, dry_run=dry_run)
        return report
