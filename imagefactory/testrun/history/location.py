"""Where the test history lives: one SQLite file in klab's state directory.

`/var/lib/klab/history.sqlite` as root, `$XDG_STATE_HOME/klab/history.sqlite` otherwise;
`KLAB_STATE_DIR` (or an explicit path) overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "history.sqlite"


def state_dir() -> Path:
    """klab's state directory: KLAB_STATE_DIR, /var/lib/klab as root, else the XDG state dir."""
    override = os.environ.get("KLAB_STATE_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/lib/klab")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "klab"


def default_db_path() -> Path:
    return state_dir() / DB_NAME
