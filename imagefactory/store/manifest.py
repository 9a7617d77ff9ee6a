"""The files store's JSON manifests (its role markers) and its temporary files.

A manifest is only ever replaced by `imagefactory.atomic.write_atomic` (a fully written and
fsynced temporary file renamed into place), so a reader or a crash sees the old manifest or
the new one, never half of one.

Temporary files live in the store's own hidden directory, `<root>/.imagefactory-tmp/`
(0700), named `<final name>.tmp-<lease>-<random>`, where `<lease>` is the writer's owner
lease (`owner.py`).  That is their proof of origin: `gc` removes a temporary file only
when it is in that directory, named by that pattern after a name the store uses, owned by
this user, and its writer's lease is dead -- a file anyone else put anywhere is never
touched, whatever its name.

Manifests are read as hostile input: `load_manifest` accepts only a regular file (never a
symlink) of at most 1 MiB holding a JSON object whose known fields have the right types
(`check_fields`); anything else is a `ManifestError` naming what is wrong, which the store
shows as a damaged golden instead of failing or calling it absent.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagefactory.atomic import write_atomic
from imagefactory.errors import UsageError
from imagefactory.store.base import ROLES, Provenance, StoreError
from imagefactory.store.names import parse_child
from imagefactory.store.owner import LEASE_PREFIX, current_owner, owner_alive

MANIFEST_FORMAT = 1
MAX_MANIFEST = 1 << 20
TEMP_DIR = ".imagefactory-tmp"
TEMP_RE = re.compile(r"(?P<final>[^/]+)\.tmp-(?P<lease>[0-9a-f]{32})-[0-9a-f]{8}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# The files a store child consists of; a temporary file must be one of them in the making.
_CHILD_SUFFIXES = (".origin.qcow2", ".qcow2", ".json")


class ManifestError(StoreError):
    """A manifest is there but cannot be used; the message says why."""


def temp_dir(root: Path) -> Path:
    """The store's private directory for files being written (created 0700)."""
    path = root / TEMP_DIR
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise StoreError(
            f"{path} is not a directory of this user's",
            hint="it is the store's own temporary directory: move whatever is there away",
        )
    return path


def temp_path(final: Path) -> Path:
    """Where to write `final` before renaming it into place (same filesystem: atomic)."""
    lease = current_owner().removeprefix(LEASE_PREFIX)
    return temp_dir(final.parent) / f"{final.name}.tmp-{lease}-{secrets.token_hex(4)}"


def stale_temp_files(root: Path, *, dry_run: bool = False) -> list[str]:
    """Temporary files of writers that died (see the module docstring), removed."""
    directory = root / TEMP_DIR
    try:
        st = directory.lstat()
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return []
    removed = []
    for entry in sorted(os.listdir(directory)):  # noqa: PTH208 - names, not paths
        match = TEMP_RE.fullmatch(entry)
        if match is None or not _is_child_file(match["final"]):
            continue
        path = directory / entry
        try:
            fst = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(fst.st_mode) or fst.st_uid != os.geteuid():
            continue
        if owner_alive(f"{LEASE_PREFIX}{match['lease']}"):
            continue
        removed.append(f"{TEMP_DIR}/{entry}")
        if not dry_run:
            path.unlink(missing_ok=True)
    return removed


def _is_child_file(name: str) -> bool:
    for suffix in _CHILD_SUFFIXES:
        if name.endswith(suffix):
            return parse_child(name[: -len(suffix)]) is not None
    return False


def write_manifest(path: Path, data: Mapping[str, Any], *, mode: int = 0o644) -> None:
    """Write `data` as the manifest at `path`, atomically, through the store's temporary
    directory (see the module docstring: that is what lets `gc` tell its own leftovers)."""
    payload = json.dumps({"format": MANIFEST_FORMAT, **data}, indent=2, sort_keys=True) + "\n"
    write_atomic(path, payload.encode(), mode=mode, temp=temp_path(path))


def load_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path` with its fields checked; None when there is none; a
    `ManifestError` when there is something that is not a usable manifest."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        if exc.errno == errno.ELOOP:
            raise ManifestError(f"{path.name} is a symbolic link") from None
        raise ManifestError(f"{path.name} cannot be read: {exc.strerror}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ManifestError(f"{path.name} is not a regular file")
        raw = os.read(fd, MAX_MANIFEST + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_MANIFEST:
        raise ManifestError(f"{path.name} is larger than {MAX_MANIFEST} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(f"{path.name} is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path.name} holds a JSON {type(data).__name__}, not an object")
    return check_fields(data)


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest's content, or None when there is no usable manifest."""
    try:
        return load_manifest(path)
    except ManifestError:
        return None


_STRINGS = (
    "leaf",
    "build_id",
    "clone_id",
    "owner",
    "created_at",
    "published_at",
    "retired_at",
    "origin",
    "origin_build_id",
)
_COUNTS = ("inode", "virtual_size")


def check_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`data` if every field the store reads has the type it expects, else ManifestError."""
    role = data.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise ManifestError(f"role {_shown(role)} is not one of {', '.join(sorted(ROLES))}")
    for name in _STRINGS:
        value = data.get(name, "")
        if not isinstance(value, str) or len(value) > 4096:
            raise ManifestError(f"{name} {_shown(value)} is not a string")
    for name in _COUNTS:
        value = data.get(name, 0)
        if type(value) is not int or value < 0:
            raise ManifestError(f"{name} {_shown(value)} is not a non-negative integer")
    digest = data.get("image_digest")
    if digest is not None and (not isinstance(digest, str) or not _DIGEST.fullmatch(digest)):
        raise ManifestError(f"image_digest {_shown(digest)} is not sha256:<64 hex digits>")
    if "provenance" in data:
        provenance_of(data)
    return data


def provenance_of(data: Mapping[str, Any]) -> Provenance:
    """The provenance recorded in a (golden or retired) manifest, checked."""
    props = data.get("provenance", {})
    if not isinstance(props, dict):
        raise ManifestError(f"provenance {_shown(props)} is not an object")
    known = set(Provenance.field_names())
    for key, value in props.items():
        if key in known and value is not None and not isinstance(value, str):
            raise ManifestError(f"provenance {key} {_shown(value)} is not a string")
    clean = {k: v for k, v in props.items() if k in known and v is not None}
    try:
        return Provenance.from_properties({**clean, "role": str(data.get("role"))})
    except UsageError as exc:
        raise ManifestError(str(exc)) from None


def _shown(value: object) -> str:
    try:
        text = json.dumps(value) if not isinstance(value, float) else repr(value)
    except (ValueError, RecursionError):
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."
