"""Where the repository's data lives: distros/, hooks/, cloud-init/, keys/.

The specs name hooks and keys by paths relative to these directories, so the tool must
find them whether it runs from a checkout (editable install) or with IMAGEFACTORY_HOME set
(`settings.project_root`).
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.settings import project_root

__all__ = ["cloud_init_dir", "distros_dir", "hooks_dir", "keys_dir", "project_root"]


def distros_dir() -> Path:
    return project_root() / "distros"


def hooks_dir() -> Path:
    return project_root() / "hooks"


def cloud_init_dir() -> Path:
    return project_root() / "cloud-init"


def keys_dir() -> Path:
    return project_root() / "keys"
