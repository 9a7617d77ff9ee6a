"""Where builds keep their logs, markers and locks (never inside the store or the cache)."""

from __future__ import annotations

import os
from pathlib import Path


def state_root() -> Path:
    """IMAGEFACTORY_STATE, else /var/lib/imagefactory/state as root, else XDG state dir."""
    override = os.environ.get("IMAGEFACTORY_STATE")
    if override:
        root = Path(override)
    elif os.geteuid() == 0:
        root = Path("/var/lib/imagefactory/state")
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        root = Path(base) / "imagefactory"
    root.mkdir(parents=True, exist_ok=True)
    return root


def builds_dir(leaf: str) -> Path:
    return state_root() / "builds" / leaf


def locks_dir() -> Path:
    path = state_root() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def markers_dir(leaf: str) -> Path:
    path = state_root() / "markers" / leaf
    path.mkdir(parents=True, exist_ok=True)
    return path
