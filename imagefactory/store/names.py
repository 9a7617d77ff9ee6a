"""The naming scheme every store uses for what it keeps under its root.

One flat namespace under the root, the same on both backends, so a person can read the
state of a store with `zfs list` or `ls` alone:

- golden: `<leaf>`; zfs `<root>/<leaf>@golden`; files `<leaf>.qcow2` (0444) + `<leaf>.json`
- build volume: `<leaf>.build-<build_id>`; zfs zvol (snapshot `@golden` at publish);
  files `.qcow2` + `.json`
- retired golden: `<leaf>.retired-<stamp>`; zfs zvol with its snapshot renamed `@retired`;
  files `.qcow2` (a hard link) + `.json`
- clone (one test run): `<leaf>.clone-<clone_id>`; zfs clone of `@golden`; files qcow2
  overlay `.qcow2` + `.origin.qcow2` (hard link pinning the golden) + `.json`

Leaves and ids are restricted to `[A-Za-z0-9][A-Za-z0-9_-]*`: no dots (the dot separates
the leaf from the kind), no `/`, `@` or `..`, so a name can never point outside the root
and `zfs list -H -o name -t snapshot | grep @golden` lists exactly the live goldens.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from imagefactory.errors import UsageError

Kind = Literal["golden", "build", "retired", "clone"]

GOLDEN_SNAPSHOT = "golden"
RETIRED_SNAPSHOT = "retired"

_ATOM = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_ATOM_RE = re.compile(_ATOM)
_CHILD_RE = re.compile(rf"(?P<leaf>{_ATOM})(?:\.(?P<kind>build|retired|clone)-(?P<ident>{_ATOM}))?")
MAX_LEAF = 100
MAX_IDENT = 64


@dataclass(frozen=True)
class ParsedName:
    """A child name split into its parts; `ident` is empty for a golden."""

    leaf: str
    kind: Kind
    ident: str

    @property
    def child(self) -> str:
        if self.kind == "golden":
            return self.leaf
        return f"{self.leaf}.{self.kind}-{self.ident}"


def _check_atom(value: str, what: str, limit: int) -> str:
    if not isinstance(value, str) or _ATOM_RE.fullmatch(value) is None or len(value) > limit:
        raise UsageError(
            f"invalid {what} {value!r}",
            hint=f"use letters, digits, '-' and '_' only (at most {limit} characters, "
            "starting with a letter or digit)",
        )
    return value


def check_leaf(leaf: str) -> str:
    """Validate a golden's leaf name (e.g. `klab-ztest-fedora-pr-12345`)."""
    return _check_atom(leaf, "golden name", MAX_LEAF)


def check_ident(ident: str, what: str = "id") -> str:
    """Validate a build id, clone id or retirement stamp."""
    return _check_atom(ident, what, MAX_IDENT)


def build_child(leaf: str, build_id: str) -> str:
    return f"{check_leaf(leaf)}.build-{check_ident(build_id, 'build id')}"


def retired_child(leaf: str, stamp: str) -> str:
    return f"{check_leaf(leaf)}.retired-{check_ident(stamp, 'retirement stamp')}"


def clone_child(leaf: str, clone_id: str) -> str:
    return f"{check_leaf(leaf)}.clone-{check_ident(clone_id, 'clone id')}"


def parse_child(child: str) -> ParsedName | None:
    """Split a child name, or None when it does not follow the scheme (then it is not ours)."""
    match = _CHILD_RE.fullmatch(child)
    if match is None:
        return None
    leaf = match["leaf"]
    ident = match["ident"] or ""
    if len(leaf) > MAX_LEAF or len(ident) > MAX_IDENT:
        return None
    kind = cast(Kind, match["kind"] or "golden")
    return ParsedName(leaf=leaf, kind=kind, ident=ident)


def utc_stamp(now: datetime | None = None) -> str:
    """A sortable UTC time stamp usable in names: `20260521T142233Z`."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def new_clone_id() -> str:
    """A clone id that sorts by creation time and does not collide between processes."""
    return f"{utc_stamp()}-{secrets.token_hex(3)}"


def unique_retired_child(leaf: str, taken: set[str]) -> str:
    """`<leaf>.retired-<now>`, with `-2`, `-3`... when a golden was retired the same second."""
    stamp = utc_stamp()
    child = retired_child(leaf, stamp)
    n = 2
    while child in taken:
        child = retired_child(leaf, f"{stamp}-{n}")
        n += 1
    return child
