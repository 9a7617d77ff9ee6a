"""Where builds keep their logs, markers and locks (never inside the store or the cache).

Everything here is private to the user running the factory: a build directory holds the
build's SSH private key and its resolved spec (hook environment included), so every
directory is created 0700.  Golden names and build ids come from the spec, the store or a
manifest on disk; each becomes a path only through `store.names.check_leaf`/`check_ident`
(the one validation of identifiers), so a forged `../../tmp/x` is refused before any path
is built from it.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagefactory.settings import state_dir
from imagefactory.store.names import check_ident, check_leaf

PRIVATE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) readable by the owner only; an existing one
    that this user owns is tightened to 0700 (state written by an older version)."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):  # `mkdir(parents=True)` would make parents 0755
        directory.mkdir(mode=PRIVATE, exist_ok=True)
    path.mkdir(mode=PRIVATE, exist_ok=True)
    st = path.stat()
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        path.chmod(PRIVATE)
    return path


def state_root() -> Path:
    """The state directory (`settings.state_dir`), created private."""
    return private_dir(state_dir())


def builds_dir(leaf: str) -> Path:
    """The directory of every build of the golden `leaf` (not created)."""
    return state_root() / "builds" / check_leaf(leaf)


def build_dir(leaf: str, build_id: str, *, create: bool = False) -> Path:
    """One build's directory: its logs, seed, key and manifest."""
    path = builds_dir(leaf) / check_ident(build_id, "build id")
    return private_dir(path) if create else path


def locks_dir() -> Path:
    return private_dir(state_root() / "locks")


def markers_dir(leaf: str) -> Path:
    return private_dir(state_root() / "markers" / check_leaf(leaf))


def crashes_dir() -> Path:
    """Tracebacks of internal errors (bugs), one file each, named by time and pid."""
    return private_dir(state_root() / "crashes")
