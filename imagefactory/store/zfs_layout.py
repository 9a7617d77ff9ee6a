"""The zfs store's datasets: names, properties, devices, and how they are read.

`ZfsStore` (zfs.py) is the operations and the publish protocol; this is what they share --
the root, the store lock, reading properties (`zfs get`), waiting for zvol devices, busy
retries, renames, and turning properties into `Golden`, `Clone` and `BuildVolume` objects.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

import structlog

from imagefactory.run import run
from imagefactory.store import zfs_cli
from imagefactory.store.base import (
    ROLE_RETIRED,
    ROLES,
    BuildVolume,
    Clone,
    Golden,
    NotInStore,
    Provenance,
    StoreError,
)
from imagefactory.store.lock import flocked
from imagefactory.store.lzc import Lzc, ZfsBusy, load_libzfs_core
from imagefactory.store.names import (
    RETIRED_SNAPSHOT,
    Kind,
    ParsedName,
)
from imagefactory.store.safety import (
    MARKER,
    check_dataset_root,
    child_in_dataset,
    refuse,
    require_role,
)
from imagefactory.store.zfs_cli import Prop, Props

log = structlog.get_logger(__name__)

PREFIX: Final = "imagefactory:"
PROP_OWNER: Final = "imagefactory:owner"
PROP_STATE: Final = "imagefactory:state"
PROP_REPLACES: Final = "imagefactory:replaces"
PROP_ORIGIN_BUILD: Final = "imagefactory:origin_build_id"
HOLD_TAG: Final = "imagefactory"
DEV_ZVOL = Path("/dev/zvol")
# Without a volblocksize, sizes are rounded to 128 KiB: a multiple of every default.
DEFAULT_ALIGN = 128 * 1024
_NATIVE = ("type", "volsize", "volblocksize", "referenced", "creation", "readonly", "clones",
           "origin")  # fmt: skip
_USER = tuple(
    PREFIX + f for f in (*Provenance.field_names(), "owner", "state", "replaces", "origin_build_id")
)
_ALL_PROPS = (*_NATIVE, *_USER)
_T = TypeVar("_T")


def round_up(size: int, align: int) -> int:
    return -(-size // align) * align


def check_volblocksize(volblocksize: int | None) -> None:
    if volblocksize is None:
        return
    if volblocksize < 512 or volblocksize > 16 * 1024 * 1024 or volblocksize & (volblocksize - 1):
        raise StoreError(
            f"invalid volblocksize {volblocksize}",
            hint="a power of two between 512 and 16M, e.g. 16384",
        )


def _udev_settle() -> None:
    if shutil.which("udevadm"):
        run(["udevadm", "settle", "--timeout=30"], check=False)


def _udev_trigger() -> None:
    """Replay `add` for zvols (zd*) only: on a lab host, every other disk must not have its
    udev rules run again because one zvol's link is late."""
    if shutil.which("udevadm"):
        run(
            ["udevadm", "trigger", "--subsystem-match=block", "--sysname-match=zd*",
             "--action=add"],
            check=False,
        )  # fmt: skip
        _udev_settle()


def _device_size(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


class ZfsLayout:
    """One zfs store's root dataset, read with the store's rules."""

    kind = "zfs"

    def __init__(self, root: str, *, device_timeout: float = 60.0) -> None:
        self.root = check_dataset_root(root)
        self.spec = f"zfs:{self.root}"
        self.device_timeout = device_timeout
        self._lzc: Lzc | None = None

    @property
    def lzc(self) -> Lzc:
        """libzfs_core, loaded on first use (raises ZfsUnavailable with what to install)."""
        if self._lzc is None:
            self._lzc = Lzc(load_libzfs_core())
        return self._lzc

    def check_available(self) -> None:
        """Fail now, with what to install or create, if this store cannot work."""
        lzc = self.lzc
        zfs_cli.zfs_command()
        if not lzc.exists(self.root):
            raise StoreError(
                f"the zfs store's root dataset {self.root} does not exist",
                hint=f"create it: zfs create -p {self.root}",
            )

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        directory = Path("/run/lock")
        if not os.access(directory, os.W_OK):
            directory = Path(tempfile.gettempdir())
        return flocked(directory / f"imagefactory-zfs-{self.root.replace('/', '+')}.lock")

    def _full(self, child: str) -> str:
        return f"{self.root}/{child}"

    def _scan(self) -> dict[str, Props]:
        """Properties of every volume and snapshot directly under the root, by name."""
        found = zfs_cli.get([self.root], _ALL_PROPS, depth=2, types=["volume", "snapshot"])
        prefix = self.root + "/"
        return {
            name: props
            for name, props in found.items()
            if name.startswith(prefix) and "/" not in name[len(prefix) :]
        }

    def _props(self, name: str) -> Props:
        return zfs_cli.get([name], _ALL_PROPS).get(name, {})

    @staticmethod
    def _role(props: Props) -> str | None:
        """The marker, only when set on this dataset itself (inherited markers are not)."""
        prop = props.get(MARKER)
        if prop is None or not prop.is_local or prop.value not in ROLES:
            return None
        return prop.value

    @staticmethod
    def _user(props: Props, field: str) -> str | None:
        prop = props.get(PREFIX + field)
        return prop.value if prop is not None and prop.is_set else None

    @staticmethod
    def _int(props: Props, name: str) -> int:
        prop = props.get(name)
        try:
            return int(prop.value) if prop is not None else 0
        except ValueError:
            return 0

    def _guard(self, name: str, kinds: set[Kind], roles: set[str]) -> tuple[ParsedName, Props]:
        """Refuse unless `name` is a volume directly under the root, named as one of
        `kinds`, carrying one of `roles` as its own marker."""
        parsed = child_in_dataset(self.root, name, kinds)
        full = self._full(parsed.child)
        if not self.lzc.exists(full):
            raise NotInStore(f"{full} does not exist")
        props = self._props(full)
        if props.get("type", Prop("-", "-")).value != "volume":
            raise refuse(f"{full} is not a volume")
        require_role(full, self._role(props), roles)
        return parsed, props

    def _retry_busy(self, what: Callable[[], _T]) -> _T:
        """Retry an operation that fails while udev (blkid) still has a new zvol open."""
        for attempt in range(20):
            try:
                return what()
            except ZfsBusy:
                if attempt == 19:
                    raise
                _udev_settle()
                time.sleep(0.25 * (attempt + 1))
        raise AssertionError("unreachable")

    def _wait_device(self, name: str, size: int | None = None) -> Path:
        """Wait for `/dev/zvol/<name>` (udev creates it after the zvol appears) and, if
        given, for the device to report `size` (it lags after a volsize change)."""
        path = DEV_ZVOL / name
        start = time.monotonic()
        _udev_settle()
        triggered = False
        while True:
            current = _device_size(path)
            if current is not None and (size is None or current == size):
                return path
            waited = time.monotonic() - start
            if waited > self.device_timeout:
                raise StoreError(
                    f"{path} did not appear (or has the wrong size) after {waited:.0f}s",
                    hint="zvol links come from udev (60-zvol.rules): is udev running?",
                )
            if not triggered and waited > 5:
                _udev_trigger()
                triggered = True
            time.sleep(0.1)

    def _wait_gone(self, name: str) -> None:
        path = DEV_ZVOL / name
        deadline = time.monotonic() + self.device_timeout
        _udev_settle()
        while path.exists() or path.is_symlink():
            if time.monotonic() > deadline:
                raise StoreError(f"{path} still exists after its zvol was destroyed")
            time.sleep(0.1)

    def _rename_volume(self, source: str, target: str) -> None:
        """Rename a zvol and bring its partitions' device links along.

        ZFS renames the zvol's own `/dev/zvol` link (it emits a change event for the whole
        disk), but not those of its partitions: `<old name>-part1` stays behind, pointing at
        the renamed zvol's partition - after a publish, a link named like the build volume
        leads into the golden.  Replaying a change event for the partitions makes udev name
        them anew and drop the stale links.  Best effort: the rename itself has happened.
        """
        self.lzc.rename(source, target)
        if shutil.which("udevadm") is None:
            return
        try:
            device = self._wait_device(target).resolve()
        except StoreError as exc:
            log.warning("store.links.not_refreshed", name=target, error=str(exc))
            return
        sys_dir = Path("/sys/class/block") / device.name
        try:
            partitions = sorted(
                entry.name
                for entry in sys_dir.iterdir()
                if entry.name.startswith(device.name) and (entry / "partition").exists()
            )
        except OSError:
            partitions = []
        if partitions:
            run(
                ["udevadm", "trigger", "--action=change", *(f"/dev/{p}" for p in partitions)],
                check=False,
            )
            _udev_settle()

    def _build_volume(self, parsed: ParsedName, props: Props) -> BuildVolume:
        full = self._full(parsed.child)
        return BuildVolume(
            leaf=parsed.leaf,
            build_id=parsed.ident,
            name=full,
            path=DEV_ZVOL / full,
            format="raw",
            size=self._int(props, "volsize"),
            store=self.spec,
            owner=self._user(props, "owner") or "",
            volblocksize=self._int(props, "volblocksize") or None,
        )

    def _destroy_volume(self, full: str) -> None:
        """Destroy a (guarded) volume and its snapshots, releasing the store's holds."""
        for snap in zfs_cli.snapshots_of(full):
            self.lzc.release(snap, HOLD_TAG)
            self.lzc.destroy_snapshot(snap)
        self._retry_busy(lambda: self.lzc.destroy(full))

    def _golden(self, leaf: str, dataset: str, snapshot: str, vol: Props, snap: Props) -> Golden:
        user = {f: v for f in Provenance.field_names() if (v := self._user(snap, f)) is not None}
        clones = snap.get("clones", Prop("", "-")).value
        return Golden(
            leaf=leaf,
            name=f"{dataset}@{snapshot}",
            store=self.spec,
            retired=snapshot == RETIRED_SNAPSHOT or self._role(vol) == ROLE_RETIRED,
            provenance=Provenance.from_properties(user),
            virtual_size=self._int(snap, "volsize"),
            allocated=self._int(snap, "referenced"),
            created=datetime.fromtimestamp(self._int(snap, "creation"), UTC),
            readonly=vol.get("readonly", Prop("off", "-")).value == "on",
            clones=tuple(sorted(c for c in clones.split(",") if c and c != "-")),
            path=None,
        )

    def _clone_object(self, parsed: ParsedName, props: Props) -> Clone:
        full = self._full(parsed.child)
        return Clone(
            leaf=parsed.leaf,
            clone_id=parsed.ident,
            name=full,
            path=DEV_ZVOL / full,
            format="raw",
            origin=props.get("origin", Prop("", "-")).value,
            origin_build_id=self._user(props, "origin_build_id") or "",
            store=self.spec,
            owner=self._user(props, "owner") or "",
        )
