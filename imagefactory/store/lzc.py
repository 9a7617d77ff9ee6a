"""OpenZFS's `libzfs_core` (Debian python3-pyzfs), loaded lazily, behind a small typed facade.

Why lazily: most hosts running imagefactory use the files store and have no ZFS at all;
importing the bindings must not be a requirement to start.  Why a facade: the bindings take
bytes, raise a deep exception hierarchy and fail in three different ways when ZFS is
missing (no module, no shared library, no /dev/zfs).  The facade takes `str`, turns the
first use into one clear "ZFS is not available: install X" error, and maps the errors the
store acts on (exists, not found, busy, has clones) onto its own exception types.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from imagefactory.errors import ImageFactoryError, InfrastructureError
from imagefactory.store.base import AlreadyInStore, NotInStore, StoreError

DEV_ZFS = Path("/dev/zfs")
_T = TypeVar("_T")


class ZfsUnavailable(InfrastructureError):
    """ZFS cannot be used on this host (module, bindings or library missing)."""


class ZfsBusy(StoreError):
    """A dataset is in use (an open zvol device, a hold)."""


class ZfsHasDependents(StoreError):
    """A snapshot still has clones."""


def load_libzfs_core(dev_zfs: Path = DEV_ZFS) -> Any:
    """Import the bindings, after checking the kernel side is there at all."""
    if not dev_zfs.exists():
        raise ZfsUnavailable(
            f"ZFS is not available: {dev_zfs} is missing (the zfs kernel module is not loaded)",
            hint="load it with `modprobe zfs` (Debian: apt-get install zfs-dkms zfsutils-linux),"
            " or use the files store: --store file:DIR",
        )
    try:
        return importlib.import_module("libzfs_core")
    except ImportError as exc:
        raise ZfsUnavailable(
            f"ZFS's Python bindings cannot be imported: {exc}",
            hint="apt-get install python3-pyzfs (module libzfs_core); a virtualenv must be "
            "made from Debian's python3 with --system-site-packages to see it",
        ) from exc


class Lzc:
    """The libzfs_core calls the zfs store uses, with `str` names and store errors."""

    def __init__(self, module: Any) -> None:
        self._m = module
        self._x = importlib.import_module(f"{module.__name__}.exceptions")
        self._call("open", "/dev/zfs", module.lzc_exists, b"")

    def _call(self, op: str, name: str, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return fn(*args)
        except self._x.ZFSInitializationFailed as exc:
            raise ZfsUnavailable(
                f"ZFS is not available: libzfs_core could not open /dev/zfs ({exc})",
                hint="load the zfs kernel module (modprobe zfs) and run as root",
            ) from exc
        except self._x.ZFSError as exc:
            raise self._translate(op, name, exc) from exc
        except OSError as exc:
            if "library" not in str(exc):
                raise
            raise ZfsUnavailable(
                f"ZFS is not available: the libzfs_core shared library cannot be loaded ({exc})",
                hint="apt-get install zfsutils-linux (it ships libzfs_core.so), then run ldconfig",
            ) from exc

    def _translate(self, op: str, name: str, exc: Any) -> ImageFactoryError:
        first = exc
        if isinstance(exc, self._x.MultipleOperationsFailure) and exc.errors:
            first = exc.errors[0]
        detail = f"{op} {name}: {exc}"
        if isinstance(first, self._x.SnapshotIsCloned):
            return ZfsHasDependents(f"{op} {name}: the snapshot has clones")
        if first.errno == errno.EBUSY:
            return ZfsBusy(f"{op} {name}: busy (in use or held)")
        if isinstance(first, self._x.ParentNotFound):
            return StoreError(detail, hint="create the store's root: zfs create -p ROOT")
        if first.errno == errno.ENOENT:
            return NotInStore(f"{op} {name}: does not exist")
        if first.errno == errno.EEXIST:
            return AlreadyInStore(f"{op} {name}: already exists")
        if isinstance(first, self._x.NoSpace):
            return StoreError(detail, hint="the pool is full")
        return StoreError(detail)

    @staticmethod
    def _props(values: Mapping[str, str | int]) -> dict[bytes, bytes | int]:
        return {k.encode(): v.encode() if isinstance(v, str) else v for k, v in values.items()}

    def exists(self, name: str) -> bool:
        return bool(self._call("exists", name, self._m.lzc_exists, name.encode()))

    def create_volume(self, name: str, props: Mapping[str, str | int]) -> None:
        """A zvol; `props` must hold `volsize` (a multiple of `volblocksize`, if given) and
        may hold user properties.  No refreservation is set: the zvol is sparse."""
        self._call("create", name, self._m.lzc_create, name.encode(), "zvol", self._props(props))

    def clone(self, name: str, origin: str, props: Mapping[str, str]) -> None:
        self._call(
            "clone", name, self._m.lzc_clone, name.encode(), origin.encode(), self._props(props)
        )

    def snapshot(self, snap: str, props: Mapping[str, str]) -> None:
        """One snapshot, created atomically with its user properties."""
        self._call("snapshot", snap, self._m.lzc_snapshot, [snap.encode()], self._props(props))

    def destroy(self, name: str) -> None:
        self._call("destroy", name, self._m.lzc_destroy, name.encode())

    def destroy_snapshot(self, snap: str) -> None:
        self._call("destroy", snap, self._m.lzc_destroy_snaps, [snap.encode()], False)

    def rename(self, source: str, target: str) -> None:
        """Rename a dataset, or a snapshot within its dataset (`a@x` → `a@y`)."""
        self._call("rename", source, self._m.lzc_rename, source.encode(), target.encode())

    def holds(self, snap: str) -> dict[str, int]:
        raw = self._call("holds", snap, self._m.lzc_get_holds, snap.encode())
        return {k.decode(): int(v) for k, v in raw.items()}

    def hold(self, snap: str, tag: str) -> None:
        """A user hold that outlives this process (no cleanup fd); idempotent."""
        if tag in self.holds(snap):
            return
        missing = self._call("hold", snap, self._m.lzc_hold, {snap.encode(): tag.encode()})
        if missing:
            raise NotInStore(f"hold {snap}: does not exist")

    def release(self, snap: str, tag: str) -> None:
        """Release a user hold; idempotent (a missing hold or snapshot is not an error)."""
        self._call("release", snap, self._m.lzc_release, {snap.encode(): [tag.encode()]})
