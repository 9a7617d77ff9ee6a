"""Stores of golden images: zfs (zvol snapshots) or files (qcow2), behind one interface.

Use `open_store()`; see `base.Store` for the contract and `names` for the naming scheme.
"""

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
from imagefactory.store.safety import UnsafeOperation
from imagefactory.store.select import default_store_spec, open_store, parse_store_spec

__all__ = [
    "ROLE_BUILD",
    "ROLE_CLONE",
    "ROLE_GOLDEN",
    "ROLE_RETIRED",
    "AlreadyInStore",
    "BuildVolume",
    "Clone",
    "GcReport",
    "Golden",
    "NotInStore",
    "Provenance",
    "Store",
    "StoreError",
    "UnsafeOperation",
    "default_store_spec",
    "open_store",
    "parse_store_spec",
]
