"""Reading a golden for export without changing it.

A files store golden is a read-only qcow2 that qemu-img reads directly.  A zfs golden is a
snapshot, and snapshot device nodes are hidden (`snapdev=hidden`), so it is read through a
temporary clone made and destroyed with the store's own API: the clone is marked as the
store's, so a crash mid-export leaves something `imagefactory gc` removes, never a stray
dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from imagefactory.store.base import Golden, Store

log = structlog.get_logger(__name__)

#: What the files store keeps its goldens in (store/files.py).
FILES_GOLDEN_FORMAT = "qcow2"


@dataclass(frozen=True)
class GoldenImage:
    """A golden's bytes as qemu-img opens them, for as long as the context lasts."""

    path: Path
    format: str


@contextmanager
def golden_image(store: Store, golden: Golden) -> Iterator[GoldenImage]:
    if golden.path is not None:
        yield GoldenImage(golden.path, FILES_GOLDEN_FORMAT)
        return
    clone = store.clone(golden.leaf)
    log.info("export.clone", clone=clone.name, golden=golden.name)
    try:
        yield GoldenImage(clone.path, clone.format)
    finally:
        store.destroy_clone(clone)
