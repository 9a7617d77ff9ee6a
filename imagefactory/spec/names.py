"""Golden names, exactly as the lab's documentation spells them.

`klab-ztest-<short>` and `klab-golden-<short>`; a PR build adds its branch, so it can never
take the release golden's name.  Branch names are turned into dataset-safe slugs; when that
loses information (or the source is not upstream OpenZFS) a short hash keeps names apart.

A name the store would refuse is refused here first, when the spec is loaded (validate,
plan), not after a fetch and a boot: the leaf must pass the store's own check, and on a zfs
store the longest dataset name it makes for the golden must fit ZFS's 255 bytes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from imagefactory.errors import UsageError

if TYPE_CHECKING:  # the model does not need this module; the loader joins the two
    from imagefactory.spec.model import DistroSpec, Lineage

# The names the lab's documentation uses for goldens; specs are versioned files, names are not.
# Their order is the documentation's: every row per distro (status, matrix) follows it.
ShortName = Literal["centos", "rocky", "fedora", "debian", "ubuntu"]
DOCUMENTED_ORDER: tuple[str, ...] = get_args(ShortName)
"""The lab guide's order of distros: columns, status rows, dry runs."""


def documented_rank(distro: str) -> tuple[int, str]:
    """Sort key of a distro name (`fedora44`) in the lab guide's order -- centos rocky fedora
    debian ubuntu -- by its short-name prefix; names it does not know go last."""
    rank = next(
        (n for n, short in enumerate(DOCUMENTED_ORDER) if distro.startswith(short)),
        len(DOCUMENTED_ORDER),
    )
    return rank, distro


DEFAULT_ZFS_ROOT = "rpool/vms"
UPSTREAM_ZFS_URL = "https://github.com/openzfs/zfs"
#: ZFS_MAX_DATASET_NAME_LEN (256) less its NUL: the longest dataset or snapshot name.
ZFS_NAME_MAX = 255
#: The longest name the store gives a golden's relatives (see store/names.py): a build
#: volume `<leaf>.build-<20261122T031502-3f9a1c>@golden`, a retired golden
#: `<leaf>.retired-<20260521T142233Z>-NN@retired`.
LONGEST_RELATIVE_SUFFIX = max(
    len(".build-20261122T031502-3f9a1c@golden"), len(".retired-20260521T142233Z-99@retired")
)


def _slug(branch: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", branch.lower()).strip("-") or "branch"


def golden_leaf(spec: DistroSpec, lineage: Lineage) -> str:
    git = spec.zfs.git if spec.zfs.provider == "git" else None
    leaf = release_leaf(spec.short, lineage)
    if git is None:
        return leaf
    slug = _slug(git.branch)
    if slug != git.branch or git.url.rstrip("/").removesuffix(".git") != UPSTREAM_ZFS_URL:
        digest = hashlib.sha256(f"{git.url}#{git.branch}".encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}"
    return f"{leaf}-{slug}"


def release_leaf(short: str, lineage: str) -> str:
    """`klab-ztest-<short>` or `klab-golden-<short>`: the golden of a spec that builds a
    packaged OpenZFS (no git source); a git build adds its branch (golden_leaf)."""
    prefix = "klab-ztest" if lineage == "ztest" else "klab-golden"
    return f"{prefix}-{short}"


def golden_leaf_problem(spec: DistroSpec) -> str | None:
    """Why the store would refuse this spec's golden names (a long PR branch), or None."""
    # Imported here: loading a spec must not load the store backends (and their imports).
    from imagefactory.store.names import MAX_LEAF, check_leaf

    lineages: tuple[Lineage, ...] = ("lean", "ztest")
    for lineage in lineages:
        leaf = golden_leaf(spec, lineage)
        try:
            check_leaf(leaf)
        except UsageError:
            excess = len(leaf) - MAX_LEAF
            return (
                f"gives the golden name {leaf[:48]}... of {len(leaf)} characters; the store "
                f"takes at most {MAX_LEAF}: shorten the branch name by {excess} characters"
            )
    return None


def golden_dataset(spec: DistroSpec, lineage: Lineage, root: str = DEFAULT_ZFS_ROOT) -> str:
    return f"{root.rstrip('/')}/{golden_leaf(spec, lineage)}@golden"


def golden_store_name(kind: str, location: str, leaf: str) -> str:
    """The name `klab status` will show for the golden in a store given as kind + location
    (`parse_store_spec`): `<root>/<leaf>@golden` or `<dir>/<leaf>.qcow2`.  Nothing is
    opened or created."""
    if kind == "zfs":
        return f"{location.rstrip('/')}/{leaf}@golden"
    return str(Path(location).expanduser().absolute() / f"{leaf}.qcow2")


def zfs_name_problem(root: str, leaf: str) -> str | None:
    """Why a zfs store under `root` could not hold this golden and its build volume."""
    golden = f"{root.rstrip('/')}/{leaf}@golden"
    longest = len(f"{root.rstrip('/')}/{leaf}".encode()) + LONGEST_RELATIVE_SUFFIX
    if longest <= ZFS_NAME_MAX:
        return None
    return (
        f"the golden {golden} ({len(golden.encode())} bytes) and its build volume need "
        f"{longest} bytes of dataset name; ZFS allows {ZFS_NAME_MAX}: shorten the branch "
        f"name or the store root by {longest - ZFS_NAME_MAX} bytes"
    )


def planned_golden_name(leaf: str, store: str | None = None) -> str:
    """The golden's name in the store a build would use (`--store`, `$IMAGEFACTORY_STORE`,
    else the default), refusing a name that store could not hold.  Nothing is opened."""
    from imagefactory.store.select import parse_store_spec, resolve_store_spec

    kind, location = parse_store_spec(resolve_store_spec(store))
    if kind == "zfs":
        problem = zfs_name_problem(location, leaf)
        if problem is not None:
            raise UsageError(problem, hint="KLAB_ZFS_BRANCH or zfs.git.branch names the branch")
    return golden_store_name(kind, location, leaf)
