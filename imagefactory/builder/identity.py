"""A golden's identity: one digest over every input that decides what the golden holds.

The inputs: the resolved spec, the source image's digest, the factory's version, the packed
hooks (libraries inlined, payloads appended, their environment and timeouts: the hook plan's
digest), the hook runner, the cloud-init fragments, the bootstrap recipe of a bootstrapped
base image, and for PR builds the commit `KLAB_ZFS_BRANCH` resolved to.  What the guest
downloads from package mirrors is not an input (`--force` picks that up).

The golden keeps its identity in the provenance, with a short digest of each input file, so
`imagefactory plan` can say which file changed since the golden was built, on any host.
The record fits a provenance value (one line, at most 1024 characters): the spec, source,
hooks and version digests are not repeated in it (the provenance has fields for them), and
when a tree grows past the limit, directories are recorded as one digest each -- payload
data first, then the directories with the most files -- and a change there is named by its
directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from imagefactory import __version__
from imagefactory.paths import cloud_init_dir, hooks_dir, project_root
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Provenance
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.inline import DIRECTIVE as INLINE_DIRECTIVE
from imagefactory.vm.payload import payload_dir
from imagefactory.vm.userdata import (
    BASE_FRAGMENT,
    RUNNER_FRAGMENT,
    RUNNER_SCRIPT,
    RUNNER_UNIT,
    resolve_fragments,
)

FORMAT = "v1"
RECORD_MAX = 1024
"""A provenance value's limit (imagefactory/store/base.py): the record must fit it."""
FILE_DIGEST_CHARS = 6
"""Enough to name a changed file; the identity digest itself is the full sha256."""
RECORDED_VALUES = ("zfs",)
"""Values only the record keeps; the others are provenance fields of their own."""
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
_TOKEN = re.compile(r"[^\s=]+=\S*")
_SAFE = "._-+@~*"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Identity:
    """The digest, and the parts it was made of: named values (`spec`, `source`, `version`,
    `hooks`, and `zfs` for a PR build) and one digest per input file (by path in the
    repository).  Read back from a provenance, a whole directory may be one entry (`dir/*`)."""

    digest: str
    values: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def record(self) -> str:
        """The one-line form kept in the provenance (`Provenance.identity`)."""
        head = [FORMAT, f"id={self.digest}"]
        head += [f"{k}={v}" for k, v in sorted(self.values.items()) if k in RECORDED_VALUES]
        files = {path: digest[:FILE_DIGEST_CHARS] for path, digest in self.files.items()}
        collapsed: set[str] = set()
        while True:
            text = " ".join([*head, *_file_tokens(files)])
            if len(text) <= RECORD_MAX:
                return text
            directory = _largest_directory(files, collapsed)
            if directory is None:  # every directory is one entry already: values only
                return " ".join(head)
            collapsed.add(directory)
            members = sorted(p for p in files if p.rsplit("/", 1)[0] == directory)
            joined = _sha256("\n".join(f"{p} {files[p]}" for p in members).encode())
            for path in members:
                del files[path]
            files[f"{directory}/*"] = joined[:FILE_DIGEST_CHARS]

    @classmethod
    def parse(cls, text: str | None) -> Identity | None:
        """A provenance's record; None for a golden built before identities (or a record
        this version cannot read): its inputs are unknown, so a rebuild is due."""
        if not text:
            return None
        tokens = text.split()
        if not tokens or tokens[0] != FORMAT:
            return None
        values: dict[str, str] = {}
        files: dict[str, str] = {}
        for token in tokens[1:]:
            if not _TOKEN.fullmatch(token):
                return None
            key, value = token.split("=", 1)
            if key.endswith("/"):
                for entry in value.split(","):
                    name, sep, digest = entry.rpartition(":")
                    if not sep or not name:
                        return None
                    files[unquote(key) + unquote(name)] = digest
            else:
                values[key] = value
        digest = values.pop("id", "")
        return cls(digest, values, files) if digest else None

    @classmethod
    def of_golden(cls, provenance: Provenance) -> Identity | None:
        """A golden's identity: its record plus the provenance fields it does not repeat."""
        recorded = cls.parse(provenance.identity)
        if recorded is None:
            return None
        fields = {
            "spec": provenance.spec_digest,
            "source": provenance.source_digest,
            "version": provenance.tool_version,
            "hooks": provenance.hooks_digest,
        }
        values = {**{k: v for k, v in fields.items() if v}, **recorded.values}
        return cls(recorded.digest, values, recorded.files)


def _file_tokens(files: Mapping[str, str]) -> list[str]:
    """`dir/=name:digest,name:digest` per directory: the directory is written once.  Names
    are percent-encoded where they hold the record's separators (a recipe called
    `my recipe.sh` must not make every golden's inputs unreadable, hence always stale)."""
    by_dir: dict[str, list[str]] = {}
    for path in sorted(files):
        directory, _, name = path.rpartition("/")
        by_dir.setdefault(directory, []).append(f"{quote(name, _SAFE)}:{files[path]}")
    return [f"{quote(d, _SAFE + '/')}/={','.join(e)}" for d, e in by_dir.items()]


def _largest_directory(files: Mapping[str, str], collapsed: set[str]) -> str | None:
    """The next directory to record as one entry: payload data before hook scripts (a
    script's name says more), then the one with the most files."""
    counts: dict[str, int] = {}
    for path in files:
        directory = path.rpartition("/")[0]
        if directory not in collapsed:
            counts[directory] = counts.get(directory, 0) + 1
    candidates = [d for d, n in counts.items() if n > 1]
    if not candidates:
        return None
    return max(candidates, key=lambda d: (d.startswith("hooks/payload/"), counts[d], d))


def _label(path: Path) -> str:
    """A file's name in messages: its path in the factory's tree (or the package's)."""
    resolved = path.resolve()
    for root in (project_root(), _PACKAGE_ROOT):
        if resolved.is_relative_to(root.resolve()):
            return resolved.relative_to(root.resolve()).as_posix()
    return resolved.as_posix()


def hook_files(plan: HookPlan) -> list[Path]:
    """The repository files the packed hooks were made of: each script, the libraries it
    inlines and the payload directory it carries."""
    files: list[Path] = []
    for hook in plan.hooks:
        if hook.source is None:
            continue
        files.append(hook.source)
        for match in INLINE_DIRECTIVE.finditer(hook.source.read_bytes()):
            files.append(hook.source.parent / match.group(1).decode())
        payload = payload_dir(hook)
        if payload is not None:
            files += sorted(p for p in (hooks_dir() / payload).rglob("*") if p.is_file())
    return files


def runner_files() -> list[Path]:
    """The runner that executes the hooks in the guest (the same every build)."""
    return [hooks_dir() / RUNNER_SCRIPT, hooks_dir() / RUNNER_UNIT]


def hooks_digest(plan: HookPlan) -> str:
    """Everything the build's guest runs: its hook plan and the runner (`hooks_digest` in
    the provenance, and part of the identity)."""
    return plan.digest(*(path.read_bytes() for path in runner_files()))


def fragment_files(resolved: ResolvedSpec) -> list[Path]:
    root = cloud_init_dir()
    named = resolve_fragments(resolved.spec.cloud_init.fragments, root)
    return [root / BASE_FRAGMENT, *named, root / RUNNER_FRAGMENT]


def bootstrap_recipe() -> dict[str, str]:
    """What the bootstrap recipe puts into every bootstrapped image, by the file that says it.

    Digests of what the code renders rather than of its bytes: a reworded docstring in
    bootstrap.py must not make every golden stale, a new package or boot file must."""
    from imagefactory.fetch import bootstrap, bootstrap_files

    placeholder = "00000000-0000-4000-8000-000000000000"
    rendered = {
        "bios": bootstrap_files.guest_files(placeholder, None),
        "uefi": bootstrap_files.guest_files(placeholder, "0000-0000"),
    }
    recipe = {
        "version": bootstrap.RECIPE_VERSION,
        "base": bootstrap.BASE_PACKAGES,
        "uefi": bootstrap.UEFI_PACKAGES,
        "grub": bootstrap.GRUB_EFI_MODULES,
        "dpkg": bootstrap.DPKG_PATH_EXCLUDES,
        "compress": bootstrap.COMPRESS_QCOW2,
    }
    return {
        _label(bootstrap.CUSTOMIZE_HOOK): _sha256(bootstrap.CUSTOMIZE_HOOK.read_bytes()),
        _label(Path(bootstrap_files.__file__)): _sha256(_canonical(rendered)),
        _label(Path(bootstrap.__file__)): _sha256(_canonical(recipe)),
    }


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=list).encode()


def _file_digests(paths: Iterable[Path]) -> dict[str, str]:
    return {_label(path): _sha256(path.read_bytes()) for path in paths}


def golden_identity(
    resolved: ResolvedSpec,
    plan: HookPlan,
    *,
    source_digest: str,
    bootstrapped: bool,
    version: str = __version__,
) -> Identity:
    """The identity of the golden a build of `resolved` from `source_digest` makes."""
    runner = runner_files()
    files = _file_digests([*hook_files(plan), *runner, *fragment_files(resolved)])
    if bootstrapped:
        files.update(bootstrap_recipe())
    values = {
        "spec": resolved.spec_digest,
        "source": source_digest,
        "version": version,
        "hooks": hooks_digest(plan),
    }
    if resolved.zfs_commit:
        values["zfs"] = resolved.zfs_commit
    whole = {**values, "files": files}
    return Identity("sha256:" + _sha256(_canonical(whole)), values, files)


def what_changed(built: Identity | None, now: Identity, *, build_id: str) -> list[str]:
    """Why a golden built as `built` is not what a build now makes: one line per reason,
    naming the file, value or commit; empty when the identities agree."""
    since = f"since build {build_id}" if build_id else "since the golden was built"
    if built is None:
        which = f"build {build_id}" if build_id else "the golden"
        return [f"{which} was made before identities were recorded: its inputs are unknown"]
    if built.digest == now.digest:
        return []
    reasons: list[str] = []
    for key in ("version", "spec", "source", "zfs"):
        old, new = built.values.get(key), now.values.get(key)
        if old == new:
            continue
        if key == "version":
            reasons.append(f"imagefactory is {new}, was {old or 'unknown'} {since}")
        elif key == "zfs":
            moved = f"{str(new)[:12]} (was {str(old)[:12] if old else 'not recorded'})"
            reasons.append(f"the ZFS source branch is at {moved} {since}")
        elif key == "spec":
            reasons.append(f"the resolved spec changed {since}")
        else:
            reasons.append(
                f"the source image is {short_digest(new)} {since} (was {short_digest(old)})"
            )
    reasons += _file_changes(built.files, now.files, since)
    if not reasons and built.values.get("hooks") != now.values.get("hooks"):
        reasons.append(f"the hooks' environment or timeouts changed {since}")
    return reasons or [f"an input changed {since}"]


def short_digest(digest: str | None) -> str:
    """`sha512:2e45ec98e7ea7317…`: enough to tell digests apart in a message."""
    algorithm, _, hexdigest = (digest or "unknown").partition(":")
    return f"{algorithm}:{hexdigest[:16]}…" if len(hexdigest) > 16 else (digest or "unknown")


def _file_changes(built: Mapping[str, str], now: Mapping[str, str], since: str) -> list[str]:
    reasons: list[str] = []
    short = {path: digest[:FILE_DIGEST_CHARS] for path, digest in now.items()}
    for entry, digest in sorted(built.items()):
        if entry.endswith("/*"):
            directory = entry[:-2]
            members = sorted(p for p in short if p.rpartition("/")[0] == directory)
            joined = _sha256("\n".join(f"{p} {short[p]}" for p in members).encode())
            if joined[:FILE_DIGEST_CHARS] != digest:
                reasons.append(f"a file in {directory}/ changed {since}")
        elif entry not in short:
            reasons.append(f"{entry} is no longer an input {since}")
        elif short[entry] != digest:
            reasons.append(f"{entry} changed {since}")
    covered = {e[:-2] for e in built if e.endswith("/*")}
    for path in sorted(set(short) - set(built)):
        if path.rpartition("/")[0] not in covered:
            reasons.append(f"{path} is a new input {since}")
    return reasons
