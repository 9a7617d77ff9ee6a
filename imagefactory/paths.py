"""Where the repository's data lives: distros/, hooks/, cloud-init/, keys/.

The specs name hooks and keys by paths relative to these directories, so the tool must
find them whether it runs from a checkout (editable install) or with IMAGEFACTORY_HOME set.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """IMAGEFACTORY_HOME, else the checkout that contains this package."""
    override = os.environ.get("IMAGEFACTORY_HOME")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent


def distros_dir() -> Path:
    return project_root() / "distros"


def hooks_dir() -> Path:
    return project_root() / "hooks"


def cloud_init_dir() -> Path:
    return project_root() / "cloud-init"


def keys_dir() -> Path:
    return project_root() / "keys"
