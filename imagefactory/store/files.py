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
never replaced) or finishes step 4.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import structlog

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
from imagefactory.store.lock import flocked
from imagefactory.store.manifest import (
    TEMP_RE,
    fsync_dir,
    fsync_file,
    read_manifest,
    temp_path,
    write_atomic,
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
from imagefactory.store.owner import current_owner, owner_alive, pid_alive
from imagefactory.store.safety import check_plain_file, child_in_dir, require_role

log = structlog.get_logger(__name__)

FORMAT: Final = "qcow2"


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


class FileStore(Store):
    """Goldens as read-only qcow2 files plus JSON manifests in one directory."""

    kind = "file"

    def __init__(self, directory: Path | str) -> None:
        path = Path(directory).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.root = path.resolve(strict=True)
        except OSError as exc:
            raise StoreError(
                f"cannot use {path} as a files store: {exc.strerror}",
                hint="choose a writable directory with --store file:DIR",
            ) from exc
        if not self.root.is_dir():
            raise StoreError(f"{self.root} is not a directory")
        self.spec = f"file:{self.root}"

    # --- paths, markers, scanning ------------------------------------------------------

    def _image(self, child: str) -> Path:
        return self.root / f"{child}.qcow2"

    def _manifest(self, child: str) -> Path:
        return self.root / f"{child}.json"

    def _origin(self, child: str) -> Path:
        return self.root / f"{child}.origin.qcow2"

    def _entries(self) -> list[str]:
        """The names in the root, sorted; names (not paths) are what the scheme parses."""
        return sorted(os.listdir(self.root))  # noqa: PTH208

    def _manifests(self) -> Iterator[tuple[ParsedName, dict[str, Any]]]:
        """Every well-named child with a readable manifest, in name order."""
        for entry in self._entries():
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            parsed = parse_child(entry[: -len(".json")])
            if parsed is None:
                continue
            manifest = read_manifest(self.root / entry)
            if manifest is not None and self._consistent(parsed, manifest):
                yield parsed, manifest

    @staticmethod
    def _consistent(parsed: ParsedName, manifest: dict[str, Any]) -> bool:
        """A manifest belongs to its name only if it says so (a copied one does not)."""
        if manifest.get("leaf") != parsed.leaf:
            return False
        if parsed.kind == "build":
            return manifest.get("build_id") == parsed.ident
        if parsed.kind == "clone":
            return manifest.get("clone_id") == parsed.ident
        return True

    def _marked(self, parsed: ParsedName, roles: set[str]) -> dict[str, Any]:
        """The child's manifest, refusing unless it carries one of `roles`."""
        path = self._manifest(parsed.child)
        check_plain_file(path, missing_ok=True)
        manifest = read_manifest(path)
        if manifest is not None and not self._consistent(parsed, manifest):
            manifest = None
        require_role(str(path), None if manifest is None else manifest.get("role"), roles)
        assert manifest is not None
        return manifest

    @staticmethod
    def _inode(path: Path) -> int | None:
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None
        return st.st_ino if stat.S_ISREG(st.st_mode) else None

    def _unlink(self, path: Path) -> None:
        if check_plain_file(path, missing_ok=True):
            path.unlink()

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return flocked(self.root)

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

    def _build_manifest(
        self, parsed: ParsedName, size: int, owner: str, created_at: str | None = None
    ) -> dict[str, Any]:
        return {
            "role": ROLE_BUILD,
            "leaf": parsed.leaf,
            "build_id": parsed.ident,
            "owner": owner,
            "virtual_size": size,
            "created_at": created_at or _now(),
        }

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
            write_atomic(manifest_path, manifest)
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
            write_atomic(self._manifest(child), manifest)
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
                write_atomic(self._manifest(parsed.child), manifest)
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
            write_atomic(self._manifest(parsed.child), manifest)
        return self._build_volume(parsed, manifest)

    def destroy_build_volume(self, volume: BuildVolume | str) -> None:
        with self._lock():
            self._recover_locked()
            parsed, _ = self._guard_build(volume)
            self._remove_child(parsed.child)
        log.info("store.build_volume.destroyed", store=self.spec, name=parsed.child)

    def _remove_child(self, child: str) -> None:
        """Remove a child's files, its manifest (the marker) last."""
        self._unlink(self._image(child))
        self._unlink(self._origin(child))
        self._unlink(self._manifest(child))
        fsync_dir(self.root)

    # --- goldens -------------------------------------------------------------------------

    def _live(self, leaf: str) -> tuple[dict[str, Any], Path] | None:
        """The live golden's manifest and image, consistent even right after a crash."""
        image = self._image(leaf)
        inode = self._inode(image)
        if inode is None:
            return None
        parsed = ParsedName(leaf=leaf, kind="golden", ident="")
        manifest = read_manifest(self._manifest(leaf))
        if (
            manifest is not None
            and self._consistent(parsed, manifest)
            and manifest.get("role") == ROLE_GOLDEN
            and manifest.get("inode") == inode
        ):
            return manifest, image
        # Published (image renamed) but the manifest rename was cut short by a crash.
        for p, m in self._manifests():
            if (
                p.leaf == leaf
                and p.kind == "build"
                and m.get("role") == ROLE_GOLDEN
                and m.get("inode") == inode
            ):
                return m, image
        return None

    def _clone_origins(self) -> dict[int, list[str]]:
        """Golden inode → names of the clones pinned to it."""
        origins: dict[int, list[str]] = {}
        for parsed, m in self._manifests():
            if parsed.kind == "clone" and m.get("role") == ROLE_CLONE:
                inode = self._inode(self._origin(parsed.child))
                if inode is not None:
                    origins.setdefault(inode, []).append(str(self._image(parsed.child)))
        return origins

    def _golden(
        self, leaf: str, manifest: dict[str, Any], image: Path, origins: dict[int, list[str]]
    ) -> Golden:
        st = image.stat()
        provenance = Provenance.from_properties(
            {**manifest.get("provenance", {}), "role": str(manifest.get("role"))}
        )
        return Golden(
            leaf=leaf,
            name=str(image),
            store=self.spec,
            retired=manifest.get("role") == ROLE_RETIRED,
            provenance=provenance,
            virtual_size=int(manifest.get("virtual_size", 0)),
            allocated=st.st_blocks * 512,
            created=_parse_time(manifest.get("published_at")),
            readonly=(st.st_mode & 0o222) == 0,
            clones=tuple(sorted(origins.get(st.st_ino, []))),
            path=image,
        )

    def _retired(self) -> Iterator[tuple[ParsedName, dict[str, Any], Path]]:
        """Retired goldens whose image is really theirs and not the live golden's."""
        for parsed, m in self._manifests():
            if parsed.kind != "retired" or m.get("role") != ROLE_RETIRED:
                continue
            image = self._image(parsed.child)
            inode = self._inode(image)
            if inode is None or inode != m.get("inode"):
                continue
            live = self._live(parsed.leaf)
            if live is not None and self._inode(live[1]) == inode:
                continue
            yield parsed, m, image

    def list_goldens(self, *, include_retired: bool = False) -> list[Golden]:
        origins = self._clone_origins()
        leaves = sorted({p.leaf for p, _ in self._manifests()})
        goldens = []
        for leaf in leaves:
            live = self._live(leaf)
            if live is not None:
                goldens.append(self._golden(leaf, live[0], live[1], origins))
        if include_retired:
            for parsed, m, image in self._retired():
                goldens.append(self._golden(parsed.leaf, m, image, origins))
        goldens.sort(key=lambda g: (g.leaf, g.retired, -g.created.timestamp()))
        return goldens

    def get_golden(self, leaf: str) -> Golden | None:
        check_leaf(leaf)
        live = self._live(leaf)
        if live is None:
            return None
        return self._golden(leaf, live[0], live[1], self._clone_origins())

    def _taken(self) -> set[str]:
        children = set()
        for entry in self._entries():
            for suffix in (".origin.qcow2", ".qcow2", ".json"):
                if entry.endswith(suffix):
                    children.add(entry[: -len(suffix)])
                    break
        return children

    def publish(self, volume: BuildVolume, provenance: Provenance) -> Golden:
        parsed = child_in_dir(self.root, volume.name, {"build"})
        if provenance.build_id != parsed.ident:
            raise StoreError(
                f"provenance build_id {provenance.build_id!r} is not the build volume's "
                f"({parsed.ident!r})"
            )
        leaf, child = parsed.leaf, parsed.child
        image = self._image(child)
        with self._lock():
            self._recover_locked()
            build_manifest = self._marked(parsed, {ROLE_BUILD})
            check_plain_file(image)
            fsync_file(image)
            props = provenance.to_properties()
            props.pop("role", None)
            golden_manifest = {
                "role": ROLE_GOLDEN,
                "leaf": leaf,
                "build_id": parsed.ident,
                "owner": build_manifest.get("owner", ""),
                "inode": image.stat().st_ino,
                "virtual_size": qemu_img.virtual_size(image, FORMAT),
                "created_at": build_manifest.get("created_at", _now()),
                "published_at": _now(),
                "provenance": props,
            }
            write_atomic(self._manifest(child), golden_manifest, mode=0o444)
            image.chmod(0o444)
            crashpoint("files.publish.pending")
            live = self._live(leaf)
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

    def _retire_locked(self, leaf: str, live: tuple[dict[str, Any], Path], *, commit: bool) -> str:
        """Give the live golden a retired name (manifest first, then a hard link); with
        `commit`, also remove its golden name (image first: that is the commit point)."""
        manifest, image = live
        retired = unique_retired_child(leaf, self._taken())
        write_atomic(
            self._manifest(retired),
            {**manifest, "role": ROLE_RETIRED, "retired_at": _now()},
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
            live = self._live(leaf)
            if live is None:
                raise NotInStore(f"no golden {leaf} in {self.spec}")
            retired = self._retire_locked(leaf, live, commit=True)
        log.info("store.retired", store=self.spec, golden=leaf, retired=retired)
        manifest = read_manifest(self._manifest(retired))
        assert manifest is not None
        return self._golden(leaf, manifest, self._image(retired), self._clone_origins())

    # --- recovery ------------------------------------------------------------------------

    def _recover_locked(self) -> None:
        """Bring the store back to a clean state after a crash (see the module docstring)."""
        for parsed, m in list(self._manifests()):
            if parsed.kind != "build" or m.get("role") != ROLE_GOLDEN:
                continue
            inode = m.get("inode")
            build_image = self._image(parsed.child)
            if self._inode(build_image) == inode:
                # Not committed: the old golden is still in place; back to a build volume.
                build_image.chmod(0o644)
                restored = self._build_manifest(
                    parsed,
                    int(m.get("virtual_size", 0)),
                    str(m.get("owner", "")),
                    str(m.get("created_at", "")) or None,
                )
                write_atomic(self._manifest(parsed.child), restored)
                log.warning("store.recover.publish_rolled_back", name=parsed.child)
            elif self._inode(self._image(parsed.leaf)) == inode:
                self._manifest(parsed.child).replace(self._manifest(parsed.leaf))
                fsync_dir(self.root)
                log.warning("store.recover.publish_completed", golden=parsed.leaf)
            else:
                self._unlink(self._manifest(parsed.child))
        for parsed, m in list(self._manifests()):
            if parsed.kind == "golden" and m.get("role") == ROLE_GOLDEN:
                if self._inode(self._image(parsed.leaf)) is None:
                    # A retire removed the image (its commit point) but not the manifest.
                    self._unlink(self._manifest(parsed.child))
            elif parsed.kind == "retired" and m.get("role") == ROLE_RETIRED:
                image = self._image(parsed.child)
                inode = self._inode(image)
                live_inode = self._inode(self._image(parsed.leaf))
                if inode is None or inode != m.get("inode") or inode == live_inode:
                    # A retirement that never committed: the golden is still live.
                    if inode is not None and inode == m.get("inode"):
                        self._unlink(image)
                    self._unlink(self._manifest(parsed.child))
                    log.warning("store.recover.retire_rolled_back", name=parsed.child)

    # --- clones --------------------------------------------------------------------------

    def _clone_object(self, parsed: ParsedName, m: dict[str, Any]) -> Clone:
        return Clone(
            leaf=parsed.leaf,
            clone_id=parsed.ident,
            name=str(self._image(parsed.child)),
            path=self._image(parsed.child),
            format=FORMAT,
            origin=str(m.get("origin", "")),
            origin_build_id=str(m.get("origin_build_id", "")),
            store=self.spec,
            owner=str(m.get("owner", "")),
        )

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
            live = self._live(leaf)
            if live is None:
                raise NotInStore(f"no golden {leaf} in {self.spec}")
            if any(p.exists() or p.is_symlink() for p in (overlay, origin, manifest_path)):
                raise AlreadyInStore(f"clone {child} already exists in {self.spec}")
            golden_manifest, golden_image = live
            manifest = {
                "role": ROLE_CLONE,
                "leaf": leaf,
                "clone_id": parsed.ident,
                "owner": current_owner(),
                "origin": str(golden_image),
                "origin_build_id": golden_manifest.get("build_id", ""),
                "created_at": _now(),
            }
            write_atomic(manifest_path, manifest)
            os.link(golden_image, origin)
            crashpoint("files.clone.pinned")
            tmp = temp_path(overlay)
            try:
                qemu_img.create(tmp, FORMAT, backing=origin.name, backing_format=FORMAT)
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
        report = GcReport()
        with self._lock():
            if not dry_run:
                self._recover_locked()
            origins = self._clone_origins()
            for parsed, m in list(self._manifests()):
                role = m.get("role")
                if parsed.kind == "build" and role == ROLE_BUILD:
                    if owner_alive(str(m.get("owner", ""))):
                        report.kept.append((parsed.child, "its build is still running"))
                        continue
                    report.removed.append(parsed.child)
                    if not dry_run:
                        self._remove_child(parsed.child)
                elif parsed.kind == "clone" and role == ROLE_CLONE:
                    complete = self._inode(self._image(parsed.child)) is not None
                    if not complete and not owner_alive(str(m.get("owner", ""))):
                        report.removed.append(parsed.child)
                        if not dry_run:
                            self._remove_child(parsed.child)
            for parsed, _, image in list(self._retired()):
                clones = origins.get(image.stat().st_ino, [])
                if clones:
                    report.kept.append((parsed.child, f"{len(clones)} clone(s) depend on it"))
                    continue
                report.removed.append(parsed.child)
                if not dry_run:
                    self._remove_child(parsed.child)
            for entry in self._entries():
                match = TEMP_RE.fullmatch(entry)
                if match and not pid_alive(int(match["pid"])):
                    report.removed.append(entry)
                    if not dry_run:
                        self._unlink(self.root / entry)
        if report.removed:
            log.info("store.gc", store=self.spec, removed=report.removed, dry_run=dry_run)
        return report
