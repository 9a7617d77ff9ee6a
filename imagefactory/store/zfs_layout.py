"""The zfs store's datasets: names, properties, and how they are read.

`ZfsStore` (zfs.py) is the operations; this is what they share -- the root, the store
lock, reading properties (`zfs get`), renames, and turning properties into `Golden`,
`Clone` and `BuildVolume` objects.  Device nodes are zvol_devices.py's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from imagefactory.store import zfs_cli, zvol_devices
from imagefactory.store.base import (
    ROLE_RETIRED,
    ROLES,
    BuildVolume,
    Clone,
    Golden,
    NotInStore,
    Provenance,
    StoreBackend,
    StoreError,
)
from imagefactory.store.lock import flocked
from imagefactory.store.lzc import Lzc, load_libzfs_core
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

PREFIX: Final = "imagefactory:"
PROP_OWNER: Final = "imagefactory:owner"
PROP_STATE: Final = "imagefactory:state"
PROP_REPLACES: Final = "imagefactory:replaces"
PROP_ORIGIN_BUILD: Final = "imagefactory:origin_build_id"
HOLD_TAG: Final = "imagefactory"
# Without a volblocksize, sizes are rounded to 128 KiB: a multiple of every default.
DEFAULT_ALIGN = 128 * 1024
_NATIVE = ("type", "volsize", "volblocksize", "referenced", "creation", "readonly", "clones",
           "origin")  # fmt: skip
_USER = tuple(
    PREFIX + f for f in (*Provenance.field_names(), "owner", "state", "replaces", "origin_build_id")
)
_ALL_PROPS = (*_NATIVE, *_USER)
_NONE = Prop("-", "-")


@dataclass(frozen=True)
class Dataset:
    """A volume directly under the root as one `zfs get` saw it, with its snapshots'."""

    name: str
    props: Props
    snapshots: dict[str, Props]
    """Snapshot name (after the @) -> its properties."""


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


class ZfsLayout(StoreBackend[Dataset, None]):
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

    def _records(self) -> Iterator[tuple[str, Dataset]]:
        """The volumes under the root, in name order, from one `zfs get`."""
        state = self._scan()
        snapshots: dict[str, dict[str, Props]] = {}
        for name, props in state.items():
            dataset, at, snapshot = name.partition("@")
            if at:
                snapshots.setdefault(dataset, {})[snapshot] = props
        for name, props in sorted(state.items()):
            if "@" not in name and props.get("type", _NONE).value == "volume":
                yield name[len(self.root) + 1 :], Dataset(name, props, snapshots.get(name, {}))

    def _marker(self, parsed: ParsedName, record: Dataset) -> str | None:
        return self._role(record.props)

    def _parse_object(self, name: str, kinds: set[Kind]) -> ParsedName:
        return child_in_dataset(self.root, name, kinds)

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
        parsed = self._parse_object(name, kinds)
        full = self._full(parsed.child)
        if not self.lzc.exists(full):
            raise NotInStore(f"{full} does not exist")
        props = self._props(full)
        if props.get("type", _NONE).value != "volume":
            raise refuse(f"{full} is not a volume")
        require_role(full, self._role(props), roles)
        return parsed, props

    def _wait_device(self, name: str, size: int | None = None) -> Path:
        return zvol_devices.wait_for(name, size, self.device_timeout)

    def _rename_volume(self, source: str, target: str) -> None:
        """Rename a zvol and bring its partitions' device links along (zvol_devices)."""
        self.lzc.rename(source, target)
        zvol_devices.refresh_partition_links(target, self.device_timeout)

    def _build_volume(self, parsed: ParsedName, props: Props) -> BuildVolume:
        full = self._full(parsed.child)
        return BuildVolume(
            leaf=parsed.leaf,
            build_id=parsed.ident,
            name=full,
            path=zvol_devices.device_path(full),
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
        zvol_devices.retry_while_busy(lambda: self.lzc.destroy(full))

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
            path=zvol_devices.device_path(full),
            format="raw",
            origin=props.get("origin", Prop("", "-")).value,
            origin_build_id=self._user(props, "origin_build_id") or "",
            store=self.spec,
            owner=self._user(props, "owner") or "",
        )
