"""The store interface both backends implement, and the plain objects it hands out.

The build pipeline and `klab status` only ever talk to `Store`; whether goldens live as zvol
snapshots or as qcow2 files is decided once, by `open_store()`.  `StoreBackend` writes the
protocol both backends follow once -- `scan`, `publish` and `gc` are template methods -- and
each backend supplies the primitives (rename a file, rename a dataset).  The objects are frozen
snapshots of the store's state at the time they were read: methods that change the store
take them (or their names) and re-check everything against the store itself, so a stale or
forged object can never make a store touch something that is not its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.log import get_logger
from imagefactory.settings import lineage_name
from imagefactory.store.names import (
    Kind,
    ParsedName,
    check_ident,
    parse_child,
    unique_retired_child,
)
from imagefactory.store.owner import owner_alive

log = get_logger(__name__)  # structlog loads at the first event (`klab status` logs none)

ROLE_BUILD = "build"
ROLE_GOLDEN = "golden"
ROLE_RETIRED = "retired"
ROLE_CLONE = "clone"
ROLES = frozenset({ROLE_BUILD, ROLE_GOLDEN, ROLE_RETIRED, ROLE_CLONE})

ImageFormat = Literal["raw", "qcow2"]


class StoreError(InfrastructureError):
    """The store's backend failed (qemu-img, zfs, the filesystem)."""


class NotInStore(UsageError):
    """The named golden, build volume or clone does not exist in this store."""


class AlreadyInStore(UsageError):
    """Something with that name already exists in this store."""


_MAX_VALUE = 1024


def _check_value(name: str, value: str) -> str:
    """Provenance values end up in `zfs get -H` output (tab-separated lines) and JSON."""
    if not isinstance(value, str):
        raise UsageError(f"provenance {name} must be a string, not {type(value).__name__}")
    if len(value) > _MAX_VALUE or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise UsageError(
            f"provenance {name} is not storable: {value[:60]!r}",
            hint=f"use printable text without tabs or newlines, at most {_MAX_VALUE} characters",
        )
    return value


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _tool_version() -> str:
    # Read when a provenance is made, not when the store is imported (importlib.metadata).
    from imagefactory import __version__

    return __version__


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """What a golden is and where it came from; stored as `imagefactory:<field>` properties
    on the zfs `@golden` snapshot, or in the files store's JSON manifest.

    `role` is the store's marker (golden, retired...) and is set by the store; the caller
    fills the rest.  Unknown values stay None and are simply not recorded.
    """

    distro: str
    lineage: str
    build_id: str
    built_at: str = field(default_factory=_now_iso)
    role: str = ROLE_GOLDEN
    zfs_version: str | None = None
    suite_version: str | None = None
    source_digest: str | None = None
    spec_digest: str | None = None
    hooks_digest: str | None = None
    """What the guest ran (hooks, libraries, payloads, runner): see HookPlan.digest."""
    inventory_digest: str | None = None
    """The suite inventory kept for this golden (imagefactory/testrun/inventory.py)."""
    identity: str | None = None
    """Every input the golden was made of, one digest plus a short one per input file
    (imagefactory/builder/identity.py); None: built before identities, inputs unknown."""
    guest_facts: str | None = None
    """What the sealed guest holds (ksh, zfs-tests.sh, vdev images, commit built), as compact
    JSON: `klab status` on any host reads it here (store/guest_facts.py)."""
    tool_version: str | None = field(default_factory=_tool_version)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                _check_value(f.name, value)
        if self.build_id:
            # It becomes a path (the build's state directory): validated once, here.
            check_ident(self.build_id, "provenance build_id")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_properties(self) -> dict[str, str]:
        """Field name → value, without the unknown (None) fields."""
        return {k: v for k in self.field_names() if (v := getattr(self, k)) is not None}

    @classmethod
    def from_properties(cls, props: dict[str, str]) -> Provenance:
        """Inverse of `to_properties`: missing required fields read as empty strings, any
        other missing field as unknown.  Read by field name, so a new field needs no code."""
        # Typed Any: each is `str | None`, and those fields are the ones declared so.
        unknown_unless_set: dict[str, Any] = {
            f.name: props.get(f.name) for f in dataclasses.fields(cls) if f.default is None
        }
        return cls(
            distro=props.get("distro", ""),
            lineage=lineage_name(props.get("lineage", "")),  # "regular" before lean
            build_id=props.get("build_id", ""),
            built_at=props.get("built_at", ""),
            role=props.get("role", ROLE_GOLDEN),
            tool_version=props.get("tool_version"),
            **unknown_unless_set,
        )


@dataclass(frozen=True)
class BuildVolume:
    """The private volume one build writes into; it becomes the golden at publish.

    `path` is what QEMU opens (`/dev/zvol/...` for zfs, a qcow2 file for files), in
    `format`.  `owner` names the process that owns it (boot id, pid, start time); `gc`
    removes build volumes whose owner is gone.
    """

    leaf: str
    build_id: str
    name: str
    path: Path
    format: ImageFormat
    size: int
    store: str
    owner: str
    volblocksize: int | None = None


@dataclass(frozen=True)
class Golden:
    """A published (or retired) golden and everything `klab status` shows about it.

    `name` is the store-level name (`rpool/vms/klab-ztest-fedora@golden`, or the qcow2 file's
    path); `path` is a file QEMU can use as a read-only backing image (files store only:
    a zfs snapshot has no device node, clone it instead).  `allocated` is the space the
    golden's data takes (zfs `referenced`, files: blocks on disk), `clones` the names of the
    clones that depend on it.
    """

    leaf: str
    name: str
    store: str
    retired: bool
    provenance: Provenance
    virtual_size: int
    allocated: int
    created: datetime
    readonly: bool
    clones: tuple[str, ...]
    path: Path | None = None
    moved: bool = False
    """The image is not the file its manifest was written for (a copied or restored
    files store): its digest is checked once (`imagefactory verify`, or the first clone)
    before it is trusted again."""


@dataclass(frozen=True)
class Clone:
    """A throw-away copy-on-write clone of a golden, for one test run.

    `path` is what QEMU opens read-write (`/dev/zvol/...` or a qcow2 overlay) in `format`;
    `origin` is the golden's name at the time the clone was made.
    """

    leaf: str
    clone_id: str
    name: str
    path: Path
    format: ImageFormat
    origin: str
    origin_build_id: str
    store: str
    owner: str


@dataclass
class GcReport:
    """What `gc` removed, and what it kept and why (e.g. a retired golden with clones),
    by name under the store's root (`<leaf>.retired-<stamp>`, `<leaf>.build-<id>`...)."""

    removed: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)


class Store(ABC):
    """One store of goldens under one root (a dataset or a directory).

    Contract, on every backend:
    - Everything lives directly under the root and follows `imagefactory.store.names`.
    - A store destroys or renames only what carries its role marker (`imagefactory:role`
      set locally on the dataset, or a manifest next to the file) and lives under its root;
      anything else raises `UnsafeOperation`, whatever the arguments.
    - `publish` is atomic for readers: they see the old golden or the new one, never a
      half-written one; the old one is retired (renamed), and a golden with clones is never
      destroyed.  A crash at any point leaves the store recoverable by the next mutating
      call (or `gc`), which rolls an interrupted publish back (before its commit point) or
      forward (after it).
    """

    kind: str
    spec: str

    # --- build volumes -------------------------------------------------------------------

    @abstractmethod
    def create_build_volume(
        self, leaf: str, build_id: str, size: int, *, volblocksize: int | None = None
    ) -> BuildVolume:
        """Create an empty, sparse build volume of `size` bytes (rounded up as the backend
        needs), owned by this process.  Fails if that build volume exists already."""

    @abstractmethod
    def open_build_volume(self, leaf: str, build_id: str) -> BuildVolume | None:
        """Find an existing build volume (to resume a build) and take ownership of it."""

    @abstractmethod
    def write_image(
        self, volume: BuildVolume, source: Path, *, source_format: str | None = None
    ) -> BuildVolume:
        """Write a disk image (any format qemu-img reads) into the build volume, sparse,
        replacing whatever it held; grows the volume if the image is larger."""

    @abstractmethod
    def grow(self, volume: BuildVolume, size: int) -> BuildVolume:
        """Grow the build volume to `size` bytes; shrinking is refused."""

    @abstractmethod
    def destroy_build_volume(self, volume: BuildVolume | str) -> None:
        """Destroy a build volume (the pipeline's cleanup after a failed build)."""

    # --- goldens -------------------------------------------------------------------------

    @abstractmethod
    def publish(self, volume: BuildVolume, provenance: Provenance) -> Golden:
        """Turn a finished build volume into the golden `volume.leaf`: snapshot/seal it
        read-only with `provenance`, then atomically swap names; the previous golden, if
        any, is retired.  `provenance.build_id` must be the volume's build id."""

    @abstractmethod
    def list_goldens(self, *, include_retired: bool = False) -> list[Golden]:
        """The live goldens (and, if asked, the retired ones), sorted by leaf then age."""

    @abstractmethod
    def get_golden(self, leaf: str) -> Golden | None:
        """The live golden named `leaf`, or None."""

    def damaged(self) -> dict[str, str]:
        """Goldens that are there but unusable (a corrupt manifest...): leaf → reason."""
        return {}

    def verify(self, leaf: str) -> str:
        """Check the live golden `leaf` is intact; pin a moved one again.  Returns what
        was done, in a few words; raises StoreError if it is not intact."""
        if self.get_golden(leaf) is None:
            raise NotInStore(f"no golden {leaf} in {self.spec}")
        return "ok (the backend checks its own data)"

    def contains(self, path: Path) -> bool:
        """Whether `path` (a disk a VM opens) is one of this store's objects."""
        return False

    # --- clones --------------------------------------------------------------------------

    @abstractmethod
    def clone(self, leaf: str, clone_id: str | None = None) -> Clone:
        """A writable copy-on-write clone of the live golden `leaf`."""

    @abstractmethod
    def list_clones(self, leaf: str | None = None) -> list[Clone]:
        """Clones under the root, optionally only those of `leaf`."""

    @abstractmethod
    def destroy_clone(self, clone: Clone | str) -> None:
        """Destroy one clone (a `Clone`, or its name under the root)."""

    # --- housekeeping --------------------------------------------------------------------

    @abstractmethod
    def gc(self, *, dry_run: bool = False) -> GcReport:
        """Finish or undo interrupted publishes, then remove retired goldens without clones
        and build volumes (and temporary files) whose owning process is gone."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"


R = TypeVar("R")
P = TypeVar("P")


@dataclass(frozen=True)
class Child(Generic[R]):
    """One object directly under a store's root, named by the scheme, carrying its marker."""

    parsed: ParsedName
    role: str
    record: R
    """What the backend knows of it: a files store manifest, a zvol's properties."""


class StoreBackend(Store, Generic[R, P]):
    """The store protocol, written once: `scan`, `publish` and `gc` are template methods
    calling primitives each backend supplies (R: what `scan` reads of an object; P: what
    a publish prepares before it takes the store lock)."""

    # --- primitives ----------------------------------------------------------------------

    @abstractmethod
    def _lock(self) -> contextlib.AbstractContextManager[None]:
        """The store lock, held across every change of names (see `Store`)."""

    @abstractmethod
    def _recover_locked(self) -> None:
        """Roll an interrupted publish back (before its commit point) or forward (after)."""

    @abstractmethod
    def _records(self) -> Iterable[tuple[str, R]]:
        """(child name, record) of every object directly under the root, in name order."""

    @abstractmethod
    def _marker(self, parsed: ParsedName, record: R) -> str | None:
        """The role `record` marks `parsed` with; None if no marker counts (inherited...)."""

    @abstractmethod
    def _taken(self) -> set[str]:
        """Every child name in use under the root, the store's or not."""

    @abstractmethod
    def _parse_object(self, name: str, kinds: set[Kind]) -> ParsedName:
        """`name` (as callers pass it) parsed, refused unless directly under the root."""

    @abstractmethod
    def _prepare_publish(self, parsed: ParsedName) -> P:
        """What publishing needs that takes long and no lock (the files store hashes)."""

    @abstractmethod
    def _has_golden(self, leaf: str) -> bool:
        """Whether a live golden `leaf` exists (to be retired); refuses a foreign one."""

    @abstractmethod
    def _seal(
        self, parsed: ParsedName, provenance: Provenance, prepared: P, replaces: str | None
    ) -> None:
        """Check the build is still this store's; make it the pending golden: read-only,
        with `provenance`, recording `replaces` (the live golden's retired name)."""

    @abstractmethod
    def _retire_golden(self, leaf: str, retired: str) -> None:
        """Give the live golden `leaf` the retired name `retired`."""

    @abstractmethod
    def _commit(self, parsed: ParsedName) -> None:
        """Give the pending golden the golden's name: the commit point, and what follows."""

    @abstractmethod
    def _owner(self, child: Child[R]) -> str:
        """The owner lease recorded on a build volume or clone."""

    @abstractmethod
    def _finished(self, child: Child[R]) -> bool:
        """A clone's data is there; a retirement committed (else recovery's, never gc's)."""

    @abstractmethod
    def _dependents(self, children: list[Child[R]]) -> dict[str, int]:
        """Retired golden (child name) -> how many clones depend on it."""

    @abstractmethod
    def _collect(self, child: Child[R], *, dry_run: bool) -> str | None:
        """Remove an abandoned object (unless `dry_run`); None if removed, else why kept."""

    def _collect_leftovers(self, *, dry_run: bool) -> list[str]:
        """Remove what a dead writer left that is no object (temporary files): their names."""
        return []

    # --- templates -----------------------------------------------------------------------

    def scan(self) -> list[Child[R]]:
        """Every object under the root the store may act on, in name order: well named and
        carrying the store's own marker.  Listings, recovery and gc all start here."""
        children = []
        for name, record in self._records():
            parsed = parse_child(name)
            role = None if parsed is None else self._marker(parsed, record)
            if parsed is not None and role is not None:
                children.append(Child(parsed, role, record))
        return children

    def publish(self, volume: BuildVolume, provenance: Provenance) -> Golden:
        """See `Store.publish`.  With the store lock held: seal the build volume as the
        pending golden, retire the live golden (if any), commit (the backend's crash points
        are in each step); an interrupted publish is repaired by `_recover_locked`."""
        parsed = self._parse_object(volume.name, {"build"})
        if provenance.build_id != parsed.ident:
            raise StoreError(
                f"provenance build_id {provenance.build_id!r} is not the build volume's "
                f"({parsed.ident!r})"
            )
        leaf = parsed.leaf
        prepared = self._prepare_publish(parsed)
        with self._lock():
            self._recover_locked()
            retired = unique_retired_child(leaf, self._taken()) if self._has_golden(leaf) else None
            self._seal(parsed, provenance, prepared, retired)
            if retired is not None:
                self._retire_golden(leaf, retired)
            self._commit(parsed)
        log.info("store.published", store=self.spec, golden=leaf, build_id=parsed.ident)
        golden = self.get_golden(leaf)
        assert golden is not None
        return golden

    def gc(self, *, dry_run: bool = False) -> GcReport:
        """See `Store.gc`.  Candidates are marked objects only: build volumes whose owner
        is gone, clones whose making a crash cut short, committed retirements without
        clones; then the backend's leftovers (temporary files of dead writers)."""
        report = GcReport()
        with self._lock():
            if not dry_run:
                self._recover_locked()
            children = self.scan()
            dependents = self._dependents(children)
            for child in children:
                kind, role, name = child.parsed.kind, child.role, child.parsed.child
                if kind == "build" and role == ROLE_BUILD:
                    if owner_alive(self._owner(child)):
                        report.kept.append((name, "its build is still running"))
                        continue
                elif kind == "clone" and role == ROLE_CLONE:
                    # A clone is its test run's to destroy (and `klab gc`'s once forgotten).
                    if self._finished(child) or owner_alive(self._owner(child)):
                        continue
                elif kind == "retired" and role == ROLE_RETIRED and self._finished(child):
                    if count := dependents.get(name, 0):
                        report.kept.append((name, f"{count} clone(s) depend on it"))
                        continue
                else:
                    continue
                kept = self._collect(child, dry_run=dry_run)
                if kept is None:
                    report.removed.append(name)
                else:
                    report.kept.append((name, kept))
            report.removed += self._collect_leftovers(dry_run=dry_run)
        if report.removed:
            log.info("store.gc", store=self.spec, removed=report.removed, dry_run=dry_run)
        return report
