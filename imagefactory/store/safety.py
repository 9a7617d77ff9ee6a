"""The guards every destructive store operation passes through first.

A store destroys or renames only what (1) lives directly under its root, (2) is named by
the store's own scheme (`names.py`) and (3) carries the store's role marker with the role
the operation expects.  These checks run before any backend call and do not trust the
caller: a path with `..`, a symlink leading out of the root, a dataset elsewhere in the
pool or one without the marker is refused with `UnsafeOperation`, whatever the arguments.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection
from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.store.names import Kind, ParsedName, parse_child

MARKER = "imagefactory:role"

_DATASET_COMPONENT = re.compile(r"[A-Za-z0-9_.:-]+")
# The files a files-store child may consist of, longest suffix first.
FILE_SUFFIXES = (".origin.qcow2", ".qcow2", ".json")


class UnsafeOperation(UsageError):
    """The store refused to touch something that is not provably its own."""


def refuse(message: str) -> UnsafeOperation:
    return UnsafeOperation(
        f"refused: {message}",
        hint="a store only destroys or renames what it created under its own root",
    )


def _check_kind(parsed: ParsedName | None, shown: str, kinds: Collection[Kind]) -> ParsedName:
    if parsed is None:
        raise refuse(f"{shown} is not named like anything this store creates")
    if parsed.kind not in kinds:
        raise refuse(f"{shown} is a {parsed.kind}, not a {' or '.join(sorted(kinds))}")
    return parsed


# --- files -------------------------------------------------------------------------------


def child_in_dir(root: Path, name: str | os.PathLike[str], kinds: Collection[Kind]) -> ParsedName:
    """Map a caller's name for a files-store object (absolute path, path relative to the
    root, file name or bare child name) to the child it names, refusing anything that is
    not directly under `root` (which must be resolved already)."""
    text = os.fspath(name)
    if not text or "\0" in text:
        raise refuse(f"{text!r} is not a valid name")
    path = Path(text)
    if ".." in path.parts:
        raise refuse(f"{text} contains '..'")
    parent = path.parent if path.is_absolute() else root / path.parent
    try:
        real_parent = parent.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise refuse(f"{text} is not under the store's root {root}") from exc
    if real_parent != root:
        raise refuse(f"{text} is not directly under the store's root {root}")
    base = path.name
    for suffix in FILE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return _check_kind(parse_child(base), text, kinds)


def check_plain_file(path: Path, *, missing_ok: bool = False) -> bool:
    """Refuse a symlink or anything but a regular file; return whether the file exists."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        if missing_ok:
            return False
        raise refuse(f"{path} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise refuse(f"{path} is a symbolic link")
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"{path} is not a regular file")
    return True


# --- zfs ---------------------------------------------------------------------------------


def check_dataset_root(root: str) -> str:
    """Validate a zfs store root such as `rpool/vms` (a dataset name, no snapshot)."""
    parts = root.split("/")
    if (
        not root
        or any(not _DATASET_COMPONENT.fullmatch(p) or p in {".", ".."} for p in parts)
        or len(root) > 200
    ):
        raise UsageError(
            f"invalid zfs store root {root!r}",
            hint="give a dataset name such as rpool/vms (no leading '/', no '@')",
        )
    return root


def child_in_dataset(root: str, name: str, kinds: Collection[Kind]) -> ParsedName:
    """Map a caller's dataset name (`<root>/<child>` or `<child>`) to the child it names,
    refusing snapshots, nested datasets and anything outside `root`."""
    if not name or "\0" in name or "@" in name or "#" in name:
        raise refuse(f"{name!r} is not a dataset name this store uses")
    prefix = root + "/"
    if name.startswith(prefix):
        child = name[len(prefix) :]
    elif "/" in name:
        raise refuse(f"{name} is not under the store's root {root}")
    else:
        child = name
    if "/" in child or child in {"", ".", ".."}:
        raise refuse(f"{name} is not directly under the store's root {root}")
    return _check_kind(parse_child(child), name, kinds)


def require_role(shown: str, role: str | None, allowed: Collection[str]) -> None:
    """Refuse unless the object carries the marker with one of the `allowed` roles."""
    if role is None:
        raise refuse(f"{shown} carries no {MARKER} marker")
    if role not in allowed:
        raise refuse(f"{shown} has {MARKER}={role}, expected {' or '.join(sorted(allowed))}")
