"""Which store a command uses: `--store`, else `$IMAGEFACTORY_STORE`, else a default.

The default prefers the lab's pool (`zfs:rpool/vms`) when that dataset exists, and falls
back to the files store so that a machine without ZFS still builds goldens.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imagefactory import settings
from imagefactory.errors import UsageError
from imagefactory.store.safety import check_dataset_root

if TYPE_CHECKING:
    from imagefactory.store.base import Store

ENV = settings.STORE.name
DEFAULT_ZFS_ROOT = "rpool/vms"
_USAGE_HINT = "use --store zfs:POOL/PATH or --store file:DIR"

StoreKind = Literal["zfs", "file"]


def parse_store_spec(spec: str) -> tuple[StoreKind, str]:
    """Split `zfs:POOL/PATH` or `file:DIR` into its kind and location."""
    kind, sep, location = spec.partition(":")
    if not sep or not location:
        raise UsageError(f"invalid store {spec!r}", hint=_USAGE_HINT)
    if kind == "zfs":
        return "zfs", check_dataset_root(location)
    if kind == "file":
        return "file", location
    raise UsageError(f"unknown store kind {kind!r} in {spec!r}", hint=_USAGE_HINT)


def _zfs_dataset_exists(name: str) -> bool:
    zfs = shutil.which("zfs")
    if zfs is None:
        return False
    try:
        proc = subprocess.run(
            [zfs, "list", "-H", "-o", "name", name],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def default_files_dir() -> Path:
    """`/var/lib/imagefactory/goldens` for root, else under `$XDG_DATA_HOME`."""
    return settings.files_store_dir()


def default_store_spec() -> str:
    if _zfs_dataset_exists(DEFAULT_ZFS_ROOT):
        return f"zfs:{DEFAULT_ZFS_ROOT}"
    return f"file:{default_files_dir()}"


def resolve_store_spec(spec: str | None) -> str:
    """The spec in force: the argument, else the environment, else the default."""
    return spec or settings.STORE.value() or default_store_spec()


def open_store(spec: str | None = None) -> Store:
    """Open the store named by `spec` (see `resolve_store_spec`), checking it can work:
    a zfs store whose host lacks ZFS fails here, naming what to install."""
    kind, location = parse_store_spec(resolve_store_spec(spec))
    # Only the backend in use is imported: `klab status` on a files store loads no zfs code.
    if kind == "zfs":
        from imagefactory.store.zfs import ZfsStore

        store = ZfsStore(location)
        store.check_available()
        return store
    from imagefactory.store.files import FileStore

    return FileStore(Path(location))
