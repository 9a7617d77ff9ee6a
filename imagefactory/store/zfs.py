"""The zfs store: goldens as held, read-only `@golden` snapshots of sparse zvols.

Layout (see `names.py`), all directly under the root dataset (default `rpool/vms`):
`<leaf>` is the golden zvol with its snapshot `@golden`; `<leaf>.build-<id>` a build volume;
`<leaf>.retired-<stamp>` a retired golden whose snapshot is renamed `@retired` (so that
`zfs list -t snapshot -o name | grep @golden` lists exactly the live goldens);
`<leaf>.clone-<id>` a clone for a test run.  Every dataset the store creates carries
`imagefactory:role` set locally at creation (build, golden, retired, clone); the snapshot
carries it too, with the provenance as `imagefactory:<field>` properties, set atomically
when the snapshot is taken.  An inherited marker does not count.

libzfs_core does the structural work (create, snapshot, clone, rename, hold, destroy); the
`zfs` command what libzfs_core cannot: `readonly`, `volsize`, user properties on existing
datasets, and listing.

Publishing, with the store lock held (crash points in brackets):
1. snapshot `B@golden` with the provenance  [zfs.publish.snapshot]; hold it;
2. `readonly=on`, `imagefactory:role=golden` on the build volume B, and, when a golden G
   exists, `imagefactory:replaces=<the name G will be retired as>`  [zfs.publish.pending]
3. COMMIT: rename G to its retired name R  [zfs.publish.retired] (then its snapshot to
   `@retired` and its role to retired); without an old golden the commit is step 4;
4. rename B to G  [zfs.publish.renamed].
ZFS cannot swap two names in one step, so between 3 and 4 no golden has the name; a crash
there is rolled forward by the next mutating call or `gc` (B is complete and verified),
and a crash before 3 is rolled back (the old golden never left).
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.log import get_logger
from imagefactory.store import qemu_img, zfs_cli, zvol_devices
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
from imagefactory.store.lzc import ZfsHasDependents
from imagefactory.store.names import (
    GOLDEN_SNAPSHOT,
    RETIRED_SNAPSHOT,
    ParsedName,
    build_child,
    check_leaf,
    clone_child,
    new_clone_id,
    parse_child,
)
from imagefactory.store.owner import current_owner
from imagefactory.store.safety import (
    MARKER,
)
from imagefactory.store.zfs_cli import Prop, Props
from imagefactory.store.zfs_layout import (
    DEFAULT_ALIGN,
    HOLD_TAG,
    PREFIX,
    PROP_ORIGIN_BUILD,
    PROP_OWNER,
    PROP_REPLACES,
    PROP_STATE,
    Dataset,
    ZfsLayout,
    check_volblocksize,
    round_up,
)

__all__ = ["HOLD_TAG", "ZfsStore"]

log = get_logger(__name__)


class ZfsStore(ZfsLayout):
    """Goldens as zvol snapshots under one root dataset."""

    kind = "zfs"

    # --- build volumes -------------------------------------------------------------------

    def _create_volume(self, full: str, size: int, volblocksize: int | None) -> None:
        props: dict[str, str | int] = {
            "volsize": round_up(size, volblocksize or DEFAULT_ALIGN),
            MARKER: ROLE_BUILD,
            PROP_OWNER: current_owner(),
            PROP_STATE: "empty",
        }
        if volblocksize is not None:
            props["volblocksize"] = volblocksize
        self.lzc.create_volume(full, props)

    def create_build_volume(
        self, leaf: str, build_id: str, size: int, *, volblocksize: int | None = None
    ) -> BuildVolume:
        child = build_child(leaf, build_id)
        parsed = parse_child(child)
        assert parsed is not None
        if size <= 0:
            raise StoreError(f"build volume size must be positive, not {size}")
        check_volblocksize(volblocksize)
        full = self._full(child)
        with self._lock():
            if self.lzc.exists(full):
                raise AlreadyInStore(f"build volume {full} already exists")
            self._create_volume(full, size, volblocksize)
        props = self._props(full)
        self._wait_device(full, self._int(props, "volsize"))
        log.info("store.build_volume.created", store=self.spec, name=full, size=size)
        return self._build_volume(parsed, props)

    def open_build_volume(self, leaf: str, build_id: str) -> BuildVolume | None:
        child = build_child(leaf, build_id)
        full = self._full(child)
        with self._lock():
            self._recover_locked()
            if not self.lzc.exists(full):
                return None
            props = self._props(full)
            if self._role(props) != ROLE_BUILD or props["type"].value != "volume":
                return None
            zfs_cli.set_props(full, {PROP_OWNER: current_owner()})
        props = self._props(full)
        self._wait_device(full)
        parsed = parse_child(child)
        assert parsed is not None
        return self._build_volume(parsed, props)

    def write_image(
        self, volume: BuildVolume, source: Path, *, source_format: str | None = None
    ) -> BuildVolume:
        fmt = source_format or qemu_img.detect_format(source)
        source_size = qemu_img.virtual_size(source, fmt)
        with self._lock():
            parsed, props = self._guard(volume.name, {"build"}, {ROLE_BUILD})
            full = self._full(parsed.child)
            volblocksize = self._int(props, "volblocksize") or None
            size = max(
                self._int(props, "volsize"),
                round_up(source_size, volblocksize or DEFAULT_ALIGN),
            )
            if self._user(props, "state") != "empty" or zfs_cli.snapshots_of(full):
                # Written before (maybe half, by a crashed build): qemu-img may only skip
                # zeros on a volume that reads as zeros, so start from a fresh one.
                self._destroy_volume(full)
                zvol_devices.wait_gone(full, self.device_timeout)
                self._create_volume(full, size, volblocksize)
            elif size > self._int(props, "volsize"):
                zfs_cli.set_props(full, {"volsize": str(size)})
            zfs_cli.set_props(full, {PROP_STATE: "writing"})
        device = self._wait_device(full, size)
        qemu_img.convert(source, fmt, device, "raw", existing_zeroed_target=True)
        zfs_cli.set_props(full, {PROP_STATE: "written"})
        log.info("store.image.written", store=self.spec, name=full, source=str(source))
        return self._build_volume(parsed, self._props(full))

    def grow(self, volume: BuildVolume, size: int) -> BuildVolume:
        with self._lock():
            parsed, props = self._guard(volume.name, {"build"}, {ROLE_BUILD})
            full = self._full(parsed.child)
            current = self._int(props, "volsize")
            size = round_up(size, self._int(props, "volblocksize") or DEFAULT_ALIGN)
            if size < current:
                raise StoreError(
                    f"cannot shrink {full} from {current} to {size} bytes",
                    hint="build volumes only grow; raise the spec's disk size instead",
                )
            if size > current:
                zfs_cli.set_props(full, {"volsize": str(size)})
        self._wait_device(full, max(size, current))
        return self._build_volume(parsed, self._props(full))

    def destroy_build_volume(self, volume: BuildVolume | str) -> None:
        name = volume.name if isinstance(volume, BuildVolume) else volume
        with self._lock():
            self._recover_locked()
            parsed, _ = self._guard(name, {"build"}, {ROLE_BUILD})
            self._destroy_volume(self._full(parsed.child))
        log.info("store.build_volume.destroyed", store=self.spec, name=name)

    # --- goldens -------------------------------------------------------------------------

    def _provenance_props(self, provenance: Provenance, role: str) -> dict[str, str]:
        values = provenance.to_properties()
        values["role"] = role
        return {PREFIX + k: v for k, v in values.items()}

    # --- publish (the protocol is StoreBackend.publish) -------------------------------

    def _prepare_publish(self, parsed: ParsedName) -> None:
        return None  # nothing to do before the lock: zfs checksums the data itself

    def _has_golden(self, leaf: str) -> bool:
        golden = self._full(leaf)
        if not self.lzc.exists(golden):
            return False
        self._guard(golden, {"golden"}, {ROLE_GOLDEN})
        return True

    def _seal(
        self, parsed: ParsedName, provenance: Provenance, prepared: None, replaces: str | None
    ) -> None:
        """Steps 1 and 2 of the module docstring."""
        build = self._full(parsed.child)
        snap = f"{build}@{GOLDEN_SNAPSHOT}"
        self._guard(build, {"build"}, {ROLE_BUILD})
        if self.lzc.exists(snap):  # left by an attempt that was rolled back
            self.lzc.release(snap, HOLD_TAG)
            self.lzc.destroy_snapshot(snap)
        self.lzc.snapshot(snap, self._provenance_props(provenance, ROLE_GOLDEN))
        crashpoint("zfs.publish.snapshot")
        self.lzc.hold(snap, HOLD_TAG)
        pending = {"readonly": "on", MARKER: ROLE_GOLDEN}
        if replaces is not None:
            pending[PROP_REPLACES] = replaces
        zfs_cli.set_props(build, pending)
        crashpoint("zfs.publish.pending")

    def _commit(self, parsed: ParsedName) -> None:
        """Step 4 (the commit point when no golden was retired in step 3)."""
        crashpoint("zfs.publish.retired")
        golden = self._full(parsed.leaf)
        self._rename_volume(self._full(parsed.child), golden)
        crashpoint("zfs.publish.renamed")
        zfs_cli.inherit(golden, PROP_REPLACES)

    def _taken(self) -> set[str]:
        return {name[len(self.root) + 1 :].split("@")[0] for name in self._scan()}

    def _retire_golden(self, leaf: str, retired: str) -> None:
        """Step 3: the commit point of a publish that replaces a golden."""
        golden, target = self._full(leaf), self._full(retired)
        self._rename_volume(golden, target)
        crashpoint("zfs.retire.renamed")
        self._normalize_retired(target)

    def _normalize_retired(self, full: str) -> None:
        """Finish a retirement: snapshot named @retired, marked retired, still held."""
        old, new = f"{full}@{GOLDEN_SNAPSHOT}", f"{full}@{RETIRED_SNAPSHOT}"
        if self.lzc.exists(old) and not self.lzc.exists(new):
            self.lzc.rename(old, new)
        zfs_cli.set_props(full, {MARKER: ROLE_RETIRED})
        if self.lzc.exists(new):
            zfs_cli.set_props(new, {MARKER: ROLE_RETIRED})
            self.lzc.hold(new, HOLD_TAG)

    def list_goldens(self, *, include_retired: bool = False) -> list[Golden]:
        return self._goldens(include_retired=include_retired)[0]

    def damaged(self) -> dict[str, str]:
        return self._goldens(include_retired=False)[1]

    def contains(self, path: Path) -> bool:
        prefix = f"{zvol_devices.DEV_ZVOL}/{self.root}/"
        text = str(path)
        return text.startswith(prefix) and "/" not in text[len(prefix) :]

    def _goldens(self, *, include_retired: bool) -> tuple[list[Golden], dict[str, str]]:
        """The goldens, and those whose properties are unusable (set by hand?) with why."""
        goldens = []
        damaged: dict[str, str] = {}

        def add(leaf: str, name: str, snapshot: str, props: Props, snap: Props) -> None:
            try:
                goldens.append(self._golden(leaf, name, snapshot, props, snap))
            except UsageError as exc:
                damaged.setdefault(leaf, f"unusable properties on {name}@{snapshot}: {exc}")

        for child in self.scan():
            parsed, dataset = child.parsed, child.record
            if parsed.kind == "golden" and child.role == ROLE_GOLDEN:
                snap = dataset.snapshots.get(GOLDEN_SNAPSHOT)
                if snap is not None:
                    add(parsed.leaf, dataset.name, GOLDEN_SNAPSHOT, dataset.props, snap)
            elif parsed.kind == "retired" and include_retired:
                for snapshot in (RETIRED_SNAPSHOT, GOLDEN_SNAPSHOT):
                    snap = dataset.snapshots.get(snapshot)
                    if snap is not None:
                        add(parsed.leaf, dataset.name, snapshot, dataset.props, snap)
                        break
        goldens.sort(key=lambda g: (g.leaf, g.retired, -g.created.timestamp()))
        return goldens, damaged

    def get_golden(self, leaf: str) -> Golden | None:
        golden = self._full(check_leaf(leaf))
        snap = f"{golden}@{GOLDEN_SNAPSHOT}"
        if not self.lzc.exists(snap):
            return None
        vol = self._props(golden)
        if self._role(vol) != ROLE_GOLDEN:
            return None
        try:
            return self._golden(leaf, golden, GOLDEN_SNAPSHOT, vol, self._props(snap))
        except UsageError:
            return None  # unusable properties: `damaged()` says why

    # --- recovery ------------------------------------------------------------------------

    def _recover_locked(self) -> None:
        """Repair what a crash in publish or retire left (see the module docstring)."""
        for child in self.scan():
            parsed, role = child.parsed, child.role
            name, props = child.record.name, child.record.props
            if parsed.kind == "build" and role == ROLE_GOLDEN:
                self._recover_pending(parsed, name, props)
            elif parsed.kind == "retired" and (
                role != ROLE_RETIRED or self.lzc.exists(f"{name}@{GOLDEN_SNAPSHOT}")
            ):
                self._normalize_retired(name)
                log.warning("store.recover.retire_completed", name=name)
            elif parsed.kind == "golden" and props.get(PROP_REPLACES, Prop("-", "-")).is_local:
                zfs_cli.inherit(name, PROP_REPLACES)  # a publish died after its last rename

    def _recover_pending(self, parsed: ParsedName, build: str, props: Props) -> None:
        golden = self._full(parsed.leaf)
        replaces = self._user(props, "replaces")
        committed = (
            replaces is not None
            and not self.lzc.exists(golden)
            and self.lzc.exists(self._full(replaces))
        )
        if committed:
            assert replaces is not None
            self._normalize_retired(self._full(replaces))
            self._rename_volume(build, golden)
            zfs_cli.inherit(golden, PROP_REPLACES)
            log.warning("store.recover.publish_completed", golden=golden)
            return
        snap = f"{build}@{GOLDEN_SNAPSHOT}"
        if self.lzc.exists(snap):
            self.lzc.release(snap, HOLD_TAG)
            self.lzc.destroy_snapshot(snap)
        zfs_cli.inherit(build, "readonly")
        if replaces is not None:
            zfs_cli.inherit(build, PROP_REPLACES)
        zfs_cli.set_props(build, {MARKER: ROLE_BUILD})
        log.warning("store.recover.publish_rolled_back", name=build)

    # --- clones --------------------------------------------------------------------------

    def clone(self, leaf: str, clone_id: str | None = None) -> Clone:
        child = clone_child(leaf, clone_id or new_clone_id())
        parsed = parse_child(child)
        assert parsed is not None
        full = self._full(child)
        origin = f"{self._full(leaf)}@{GOLDEN_SNAPSHOT}"
        with self._lock():
            self._recover_locked()
            golden = self.get_golden(leaf)
            if golden is None:
                raise NotInStore(f"no golden {leaf} in {self.spec}")
            if self.lzc.exists(full):
                raise AlreadyInStore(f"clone {full} already exists")
            self.lzc.clone(
                full,
                origin,
                {
                    MARKER: ROLE_CLONE,
                    PROP_OWNER: current_owner(),
                    PROP_ORIGIN_BUILD: golden.provenance.build_id,
                },
            )
        self._wait_device(full, golden.virtual_size)
        log.info("store.cloned", store=self.spec, golden=origin, clone=full)
        return self._clone_object(parsed, self._props(full))

    def list_clones(self, leaf: str | None = None) -> list[Clone]:
        return [
            self._clone_object(child.parsed, child.record.props)
            for child in self.scan()
            if child.parsed.kind == "clone"
            and (leaf is None or child.parsed.leaf == leaf)
            and child.role == ROLE_CLONE
        ]

    def destroy_clone(self, clone: Clone | str) -> None:
        name = clone.name if isinstance(clone, Clone) else clone
        with self._lock():
            parsed, _ = self._guard(name, {"clone"}, {ROLE_CLONE})
            self._destroy_volume(self._full(parsed.child))
        log.info("store.clone.destroyed", store=self.spec, clone=name)

    # --- gc (the rules are StoreBackend.gc) --------------------------------------------

    def _owner(self, child: Child[Dataset]) -> str:
        return self._user(child.record.props, "owner") or ""

    def _finished(self, child: Child[Dataset]) -> bool:
        return True  # a zfs clone or rename happens whole, or not at all

    def _dependents(self, children: list[Child[Dataset]]) -> dict[str, int]:
        dependents = {}
        for child in children:
            snap = child.record.snapshots.get(RETIRED_SNAPSHOT, {})
            clones = snap.get("clones", Prop("", "-")).value
            dependents[child.parsed.child] = len([c for c in clones.split(",") if c and c != "-"])
        return dependents

    def _collect(self, child: Child[Dataset], *, dry_run: bool) -> str | None:
        name = child.record.name
        if dry_run:
            return None
        if child.parsed.kind == "retired":
            snap = f"{name}@{RETIRED_SNAPSHOT}"
            try:
                if self.lzc.exists(snap):
                    self.lzc.release(snap, HOLD_TAG)
                    self.lzc.destroy_snapshot(snap)
            except ZfsHasDependents:
                # A clone appeared since the listing: keep the retired golden, and its hold.
                self.lzc.hold(snap, HOLD_TAG)
                return "a clone depends on it"
        self._destroy_volume(name)
        return None
