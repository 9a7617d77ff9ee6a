"""The suite inventory a ztest golden carries: which tests its zfs-tests has, listed where.

The guest writes it while the golden is built (hooks/ztest/inventory/suite_inventory.py ->
/etc/imagefactory/inventory.json); the build reads it from the sealed volume, checks it and
keeps it here, content-addressed (`<state>/inventories/sha256-<hex>.json`); the golden's
provenance records only its digest, because a ZFS user property holds at most 8 KiB and an
inventory is some 300 KiB.  One place for both stores: the files store could keep it next
to its qcow2, a zfs snapshot cannot.  The test stage loads it by digest to resolve `--run`
and `--group` before any clone boots (imagefactory/testrun/resolve.py).

The file comes from a guest, so it is outside text: it is size-capped, schema-checked, and a
digest is checked against its pattern before it becomes a path and against the bytes after.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from imagefactory.atomic import write_atomic
from imagefactory.builder.statedir import state_root
from imagefactory.errors import InfrastructureError

FORMAT = 1
GUEST_PATH = Path("etc/imagefactory/inventory.json")
"""Where the guest writes it, relative to the golden's root."""
MAX_BYTES = 32 * 1024 * 1024
"""Far above a real inventory (~300 KiB for 1,500 tests); a bound against a runaway file."""
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
NAME = re.compile(r"[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*")
"""A test name the host can select (the same rule as `--run`); others are skipped."""


class InventoryError(InfrastructureError):
    """An inventory that cannot be read, is not one, or is not the one the digest names."""


class _Listing(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    section: str
    tags: tuple[str, ...] = ()


class _Test(BaseModel):
    model_config = ConfigDict(extra="ignore")
    on_disk: bool
    listed: dict[str, _Listing] = {}


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Literal[1]
    suite_version: str | None = None
    runfiles: list[str] = []
    unreadable: dict[str, str] = {}
    tests: dict[str, _Test]


@dataclass(frozen=True, slots=True)
class Listing:
    """Where one runfile lists a test: its section (setup/cleanup, timeout) and tags."""

    section: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Inventory:
    """The tests one golden's suite ships (`tests`: name -> runfile -> listing)."""

    digest: str
    suite_version: str | None
    runfiles: tuple[str, ...]
    tests: Mapping[str, Mapping[str, Listing]]
    not_shipped: frozenset[str] = frozenset()
    """Listed by a runfile but missing from this suite: absent here."""
    by_base: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Test name without directories -> the full names that end with it."""

    @property
    def label(self) -> str:
        return f"zfs-tests {self.suite_version or '?'}"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_inventory(data: bytes, *, digest: str | None = None) -> Inventory:
    """The inventory in `data`; InventoryError (one line, never a traceback) when it is not."""
    if len(data) > MAX_BYTES:
        raise InventoryError(f"the suite inventory is {len(data)} bytes, over {MAX_BYTES}")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InventoryError(f"the suite inventory is not JSON: {exc}") from None
    try:
        document = _Document.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise InventoryError(
            f"the suite inventory is not one (format {FORMAT}): {where}: {first['msg']}"
        ) from None
    tests: dict[str, dict[str, Listing]] = {}
    not_shipped: set[str] = set()
    by_base: dict[str, list[str]] = {}
    for name in sorted(document.tests):
        entry = document.tests[name]
        if not NAME.fullmatch(name) or ".." in name.split("/"):
            continue
        if not entry.on_disk:
            not_shipped.add(name)
            continue
        tests[name] = {r: Listing(v.section, v.tags) for r, v in entry.listed.items()}
        by_base.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    return Inventory(
        digest=digest or digest_of(data),
        suite_version=document.suite_version,
        runfiles=tuple(document.runfiles),
        tests=tests,
        not_shipped=frozenset(not_shipped),
        by_base={k: tuple(v) for k, v in by_base.items()},
    )


def inventories_dir(state: Path | None = None) -> Path:
    return (state if state is not None else state_root()) / "inventories"


def path_for(digest: str, state: Path | None = None) -> Path:
    """The file a digest names; the digest is checked first (it comes from provenance)."""
    match = DIGEST.fullmatch(digest)
    if match is None:
        raise InventoryError(f"not an inventory digest: {digest[:80]!r}")
    return inventories_dir(state) / f"sha256-{match.group(1)}.json"


def keep_inventory(data: bytes, state: Path | None = None) -> str:
    """Check `data` and keep it under its digest (once: same bytes, same file); the digest."""
    parse_inventory(data)
    digest = digest_of(data)
    target = path_for(digest, state)
    if target.is_file() and digest_of(target.read_bytes()) == digest:
        return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, data, mode=0o644)
    return digest


def load_inventory(digest: str, state: Path | None = None) -> Inventory:
    """The inventory kept under `digest`; InventoryError if missing, altered or invalid."""
    path = path_for(digest, state)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(f"the suite inventory {path} is missing") from None
    except OSError as exc:
        raise InventoryError(f"cannot read the suite inventory {path}: {exc.strerror}") from None
    if digest_of(data) != digest:
        raise InventoryError(f"the suite inventory {path} does not match its digest")
    return parse_inventory(data, digest=digest)
