"""The files store's directory: names, manifests, the live golden, and crash recovery.

`FileStore` (files.py) is the operations; this is what they share -- where each child's
files are, which manifests count, which image is the live golden's, and how a store left
by a crash (or copied: `cp -a`, rsync, a restore) is read.  See files.py for the layout
and the publish protocol.

Inode numbers pin a manifest to its image, so a reader never pairs a new image with an old
manifest.  A copy keeps neither inode numbers nor, with rsync, hard links; so recovery
decides by which files exist (never deleting a marker because an inode changed), and a
golden whose manifest records another inode, with no publish to explain it, is `moved`:
listed, but trusted again only once its digest has been checked (files_integrity.py).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeAlias

from imagefactory.atomic import fsync_dir
from imagefactory.errors import UsageError
from imagefactory.log import get_logger
from imagefactory.store.base import (
    ROLE_BUILD,
    ROLE_CLONE,
    ROLE_GOLDEN,
    ROLE_RETIRED,
    Child,
    Clone,
    Golden,
    StoreBackend,
    StoreError,
)
from imagefactory.store.lock import flocked
from imagefactory.store.manifest import provenance_of, read_manifest, write_manifest
from imagefactory.store.names import Kind, ParsedName
from imagefactory.store.safety import check_plain_file, child_in_dir, require_role

log = get_logger(__name__)

FORMAT: Final = "qcow2"
Manifest: TypeAlias = dict[str, Any]


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _parse_time(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class ImageHash:
    """A build image's digest, taken before publishing locks the store, and the identity
    (inode, size, mtime) of the file it was taken of."""

    identity: tuple[int, int, int]
    digest: str


@dataclass(frozen=True)
class Live:
    """The live golden of a leaf: its manifest, its image, and whether the image is not
    the file the manifest was written for (a copied store)."""

    manifest: dict[str, Any]
    image: Path
    moved: bool


class FilesLayout(StoreBackend[Manifest, ImageHash]):
    """One files store's directory, read with the store's rules."""

    def __init__(self, directory: Path | str) -> None:
        path = Path(directory).expanduser()
        if path.exists() and not path.is_dir():
            raise UsageError(
                f"the files store {path} is not a directory",
                hint="choose a directory with --store file:DIR",
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
            self.root = path.resolve(strict=True)
        except OSError as exc:
            raise StoreError(
                f"cannot use {path} as a files store: {exc.strerror}",
                hint="choose a writable directory with --store file:DIR",
            ) from exc
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise StoreError(
                f"no permission to read the files store {self.root}",
                hint="run as the store's owner, or choose another with --store file:DIR",
            )
        self.spec = f"file:{self.root}"

    def _image(self, child: str) -> Path:
        return self.root / f"{child}.qcow2"

    def _manifest(self, child: str) -> Path:
        return self.root / f"{child}.json"

    def _origin(self, child: str) -> Path:
        return self.root / f"{child}.origin.qcow2"

    def _entries(self) -> list[str]:
        """The names in the root, sorted; names (not paths) are what the scheme parses."""
        return sorted(os.listdir(self.root))  # noqa: PTH208

    def _records(self) -> Iterator[tuple[str, Manifest]]:
        """Every child with a readable manifest (scan: those that name it), in name order."""
        for entry in self._entries():
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            manifest = read_manifest(self.root / entry)
            if manifest is not None:
                yield entry[: -len(".json")], manifest

    def _marker(self, parsed: ParsedName, record: Manifest) -> str | None:
        return str(record["role"]) if self._consistent(parsed, record) else None

    def _parse_object(self, name: str, kinds: set[Kind]) -> ParsedName:
        return child_in_dir(self.root, name, kinds)

    def _finished(self, child: Child[Manifest]) -> bool:
        image = self._image(child.parsed.child)
        if child.parsed.kind == "retired":
            return self._inode(image) is not None and not self._uncommitted_retirement(
                child.record, image
            )
        return self._inode(image) is not None

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

    def _build_manifest(
        self, parsed: ParsedName, size: int, owner: str, created_at: str | None = None
    ) -> dict[str, Any]:
        return {
            "role": ROLE_BUILD,
            "leaf": parsed.leaf,
            "build_id": parsed.ident,
            "owner": owner,
            "virtual_size": size,
            "created_at": created_at or now_iso(),
        }

    def _remove_child(self, child: str) -> None:
        """Remove a child's files, its manifest (the marker) last."""
        self._unlink(self._image(child))
        self._unlink(self._origin(child))
        self._unlink(self._manifest(child))
        fsync_dir(self.root)

    def _live(self, leaf: str, *, locked: bool) -> Live | None:
        """The live golden's manifest and image, consistent even right after a crash.

        A manifest is the image's if it records the image's inode.  One that does not, with
        no pending publish to explain it, belongs to a copied or restored store: the golden
        is returned `moved`.  A reader without the store lock could also see that for an
        instant in the middle of a publish, so it then looks again under the lock.
        """
        image = self._image(leaf)
        inode = self._inode(image)
        if inode is None:
            return None
        parsed = ParsedName(leaf=leaf, kind="golden", ident="")
        manifest = read_manifest(self._manifest(leaf))
        ours = (
            manifest is not None
            and self._consistent(parsed, manifest)
            and manifest.get("role") == ROLE_GOLDEN
        )
        if ours and manifest is not None and manifest.get("inode") == inode:
            return Live(manifest, image, moved=False)
        # Published (image renamed) but the manifest rename was cut short by a crash.
        for child in self.scan():
            if (
                child.parsed.leaf == leaf
                and child.parsed.kind == "build"
                and child.role == ROLE_GOLDEN
                and child.record.get("inode") == inode
            ):
                return Live(child.record, image, moved=False)
        if not ours or manifest is None:
            return None
        if not locked:
            with self._lock():
                return self._live(leaf, locked=True)
        return Live(manifest, image, moved=True)

    def _clone_origins(self, children: list[Child[Manifest]] | None = None) -> dict[int, list[str]]:
        """Golden inode → names of the clones pinned to it (among `children`, if scanned)."""
        origins: dict[int, list[str]] = {}
        for child in self.scan() if children is None else children:
            if child.parsed.kind == "clone" and child.role == ROLE_CLONE:
                inode = self._inode(self._origin(child.parsed.child))
                if inode is not None:
                    origins.setdefault(inode, []).append(str(self._image(child.parsed.child)))
        return origins

    def _retired(self) -> Iterator[tuple[ParsedName, Manifest, Path]]:
        """Retired goldens whose image is really theirs and not the live golden's."""
        for child in self.scan():
            retired = child.parsed.kind == "retired" and child.role == ROLE_RETIRED
            if retired and self._finished(child):
                yield child.parsed, child.record, self._image(child.parsed.child)

    def _uncommitted_retirement(self, manifest: Manifest, image: Path | None) -> bool:
        """A retired manifest written while its golden is still live (a publish cut
        short): no image yet, or the live golden's own image (a hard link), or the live
        golden's build.  Anything else is a committed retirement, copied or not."""
        leaf = str(manifest.get("leaf"))
        live_image = self._image(leaf)
        live_inode = self._inode(live_image)
        inode = None if image is None else self._inode(image)
        if inode is None:
            return True
        if live_inode is None:
            return False
        if inode == live_inode:
            return True
        # The same build live and retired, with no publish under way (which would make the
        # live manifest the old one for a moment): a copy of an uncommitted retirement.
        live_manifest = read_manifest(self._manifest(leaf))
        return (
            live_manifest is not None
            and live_manifest.get("role") == ROLE_GOLDEN
            and live_manifest.get("build_id") == manifest.get("build_id")
            and not any(
                c.parsed.leaf == leaf and c.parsed.kind == "build" and c.role == ROLE_GOLDEN
                for c in self.scan()
            )
        )

    def _taken(self) -> set[str]:
        children = set()
        for entry in self._entries():
            for suffix in (".origin.qcow2", ".qcow2", ".json"):
                if entry.endswith(suffix):
                    children.add(entry[: -len(suffix)])
                    break
        return children

    def _recover_locked(self) -> None:
        """Bring the store back to a clean state after a crash (see the module docstring)."""
        for child in self.scan():
            parsed, m = child.parsed, child.record
            if parsed.kind != "build" or child.role != ROLE_GOLDEN:
                continue
            build_image = self._image(parsed.child)
            # Decided by which files exist, not by inode numbers, which a copied store
            # does not keep: the build image is renamed away at the commit point.
            if self._inode(build_image) is not None:
                # Not committed: the old golden is still in place; back to a build volume.
                build_image.chmod(0o644)
                restored = self._build_manifest(
                    parsed,
                    int(m.get("virtual_size", 0)),
                    str(m.get("owner", "")),
                    str(m.get("created_at", "")) or None,
                )
                write_manifest(self._manifest(parsed.child), restored)
                log.warning("store.recover.publish_rolled_back", name=parsed.child)
            elif self._inode(self._image(parsed.leaf)) is not None:
                # Committed.  (Were this image not the one the manifest describes, its
                # inode would differ: the golden then shows as moved and its digest is
                # checked before anyone clones it.)
                self._manifest(parsed.child).replace(self._manifest(parsed.leaf))
                fsync_dir(self.root)
                log.warning("store.recover.publish_completed", golden=parsed.leaf)
            else:
                self._unlink(self._manifest(parsed.child))
        for child in self.scan():
            parsed, m = child.parsed, child.record
            if parsed.kind == "golden" and child.role == ROLE_GOLDEN:
                if self._inode(self._image(parsed.leaf)) is None:
                    # The image is gone (removed by hand, or by the `retire` of an older
                    # version, cut short after its commit point): the manifest goes too.
                    self._unlink(self._manifest(parsed.child))
            elif parsed.kind == "retired" and m.get("role") == ROLE_RETIRED:
                image = self._image(parsed.child)
                if self._uncommitted_retirement(m, image):
                    # The golden is still live: its second name (a hard link, or a copy of
                    # the same build in a copied store) and this manifest go.
                    self._unlink(image)
                    self._unlink(self._manifest(parsed.child))
                    log.warning("store.recover.retire_rolled_back", name=parsed.child)

    def _golden(
        self,
        leaf: str,
        manifest: dict[str, Any],
        image: Path,
        origins: dict[int, list[str]],
        *,
        moved: bool = False,
    ) -> Golden:
        st = image.stat()
        return Golden(
            leaf=leaf,
            name=str(image),
            store=self.spec,
            retired=manifest.get("role") == ROLE_RETIRED,
            provenance=provenance_of(manifest),
            virtual_size=int(manifest.get("virtual_size", 0)),
            allocated=st.st_blocks * 512,
            created=_parse_time(manifest.get("published_at")),
            readonly=(st.st_mode & 0o222) == 0,
            clones=tuple(sorted(origins.get(st.st_ino, []))),
            path=image,
            moved=moved,
        )

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
