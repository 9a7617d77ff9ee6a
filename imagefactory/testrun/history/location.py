"""Where the test history lives: `history.sqlite` in the one state directory.

`settings.state_dir()` (IMAGEFACTORY_STATE; KLAB_STATE_DIR is its deprecated alias); an
explicit `--history PATH` overrides it.  A history at the location used before the state
directories were one (/var/lib/klab, $XDG_STATE_HOME/klab) is still found when the new
location holds none, so an upgrade loses no runs.
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.settings import legacy_history_path, state_dir

__all__ = ["DB_NAME", "default_db_path", "state_dir"]

DB_NAME = "history.sqlite"


def default_db_path() -> Path:
    path = state_dir() / DB_NAME
    legacy = legacy_history_path()
    if not path.exists() and legacy is not None and legacy.exists():
        return legacy
    return path
