"""Golden names, exactly as the lab's documentation spells them.

`klab-ztest-<short>` and `klab-golden-<short>`; a PR build adds its branch, so it can never
take the release golden's name.  Branch names are turned into dataset-safe slugs; when that
loses information (or the source is not upstream OpenZFS) a short hash keeps names apart.
"""

from __future__ import annotations

import hashlib
import re

from imagefactory.spec.model import DistroSpec, Lineage

DEFAULT_ZFS_ROOT = "rpool/vms"
UPSTREAM_ZFS_URL = "https://github.com/openzfs/zfs"


def _slug(branch: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-") or "branch"


def golden_leaf(spec: DistroSpec, lineage: Lineage) -> str:
    prefix = "klab-ztest" if lineage == "ztest" else "klab-golden"
    leaf = f"{prefix}-{spec.short}"
    git = spec.zfs.git if spec.zfs.provider == "git" else None
    if git is None:
        return leaf
    slug = _slug(git.branch)
    if slug != git.branch or git.url.rstrip("/").removesuffix(".git") != UPSTREAM_ZFS_URL:
        digest = hashlib.sha256(f"{git.url}#{git.branch}".encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}"
    return f"{leaf}-{slug}"


def golden_dataset(spec: DistroSpec, lineage: Lineage, root: str = DEFAULT_ZFS_ROOT) -> str:
    return f"{root.rstrip('/')}/{golden_leaf(spec, lineage)}@golden"
