"""Load a distro spec: defaults layer + distro file + environment, validated in one place.

Merge rule (documented in distros/README.md): `distros/_defaults.yaml` is read first and
the distro file is merged onto it; mappings merge key by key, recursively; any other value
(scalars and lists) in the distro file replaces the default.  Environment overrides are
applied last, here and nowhere else, and `plan` shows them.

Reading and layering documents needs no pydantic: the models load when a document is
validated, so `klab status`, which reads only the distros' names (spec/index.py), starts fast.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory import settings
from imagefactory.errors import SpecError, UsageError
from imagefactory.paths import distros_dir
from imagefactory.spec.located import (
    LocatedDoc,
    Origin,
    PathKey,
    dotted,
)
from imagefactory.spec.located import format_validation_error as format_validation_error
from imagefactory.spec.names import golden_leaf, golden_leaf_problem
from imagefactory.spec.yaml_doc import load_yaml

if TYPE_CHECKING:  # the models (pydantic) load when a document is validated, not to read one
    from imagefactory.spec.model import DistroSpec, Lineage

DEFAULTS_FILE = "_defaults.yaml"
LINEAGE_OLD_KEY = "regular"
SPEC_SUFFIXES = (".yaml", ".yml", ".hcl")
UPSTREAM_ZFS = "https://github.com/openzfs/zfs"
ENV_KIND = settings.LINEAGE.name
ENV_FORCE = settings.FORCE_REBUILD.name
ENV_ZFS_SOURCE = settings.ZFS_SOURCE.name
ENV_ZFS_BRANCH = settings.ZFS_BRANCH.name


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated spec plus everything the environment and command line decided."""

    spec: DistroSpec
    path: Path
    lineage: Lineage
    force_rebuild: bool
    overrides: dict[str, str] = field(default_factory=dict)
    zfs_ref: str | None = None
    """PR builds: the ref `zfs.git.branch` resolved to on the source, and its commit (set by
    the build, imagefactory/fetch/git_refs.py; the guest checks out exactly that commit)."""
    zfs_commit: str | None = None

    @property
    def golden_leaf(self) -> str:
        return golden_leaf(self.spec, self.lineage)

    @property
    def spec_digest(self) -> str:
        """Hash of the resolved spec, recorded on the golden (provenance, cache keys)."""
        canonical = json.dumps(self.spec.model_dump(mode="json"), sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_document(path: Path) -> LocatedDoc:
    display = _display(path)
    if path.suffix == ".hcl":
        from imagefactory.spec.hcl_doc import load_hcl  # hcl2 and lark: only for an HCL spec

        return _lean_keys(load_hcl(path, display))
    if path.suffix in (".yaml", ".yml"):
        return _lean_keys(load_yaml(path, display))
    raise SpecError(f"{display}: unknown spec format (use .yaml or .hcl)")


def _lean_keys(doc: LocatedDoc) -> LocatedDoc:
    """`disk.regular` and `hooks.regular`, the lean lineage's older key, read as `lean`.

    Renamed in each document before the layers merge, so an older spec over a newer
    defaults layer still overrides it; both names in one document is an error."""
    for section in ("disk", "hooks"):
        node = doc.data.get(section)
        if not isinstance(node, dict) or LINEAGE_OLD_KEY not in node:
            continue
        old, new = (section, LINEAGE_OLD_KEY), (section, "lean")
        if "lean" in node:
            raise SpecError(
                f"{doc.origin_of(old)}: {dotted(old)}: the older name of {dotted(new)}, "
                "which is also set; keep lean"
            )
        node["lean"] = node.pop(LINEAGE_OLD_KEY)
        for path in [p for p in doc.origins if p[:2] == old]:
            doc.origins[(*new, *path[2:])] = doc.origins.pop(path)
    return doc


def merge(base: LocatedDoc, top: LocatedDoc) -> LocatedDoc:
    """Deep-merge mappings; top's scalars and lists replace base's (with their origins)."""
    origins: dict[PathKey, Origin] = dict(base.origins)
    data = _merge_values(base.data, top.data, (), origins, top)
    return LocatedDoc(data, origins, top.file)


def _merge_values(
    base: Any, top: Any, path: PathKey, origins: dict[PathKey, Origin], top_doc: LocatedDoc
) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            child = (*path, key)
            if key in base:
                out[key] = _merge_values(base[key], value, child, origins, top_doc)
            else:
                out[key] = value
                _copy_origins(child, origins, top_doc)
        if path in top_doc.origins:
            origins[path] = top_doc.origins[path]
        return out
    for stale in [p for p in origins if p[: len(path)] == path]:
        del origins[stale]
    _copy_origins(path, origins, top_doc)
    return top


def _copy_origins(path: PathKey, origins: dict[PathKey, Origin], doc: LocatedDoc) -> None:
    for p, origin in doc.origins.items():
        if p[: len(path)] == path:
            origins[p] = origin


def _set(doc: LocatedDoc, path: PathKey, value: Any, origin: Origin) -> None:
    node = doc.data
    for part in path[:-1]:
        assert isinstance(part, str)
        node = node.setdefault(part, {})
    last = path[-1]
    assert isinstance(last, str)
    node[last] = value
    doc.origins[path] = origin


def apply_environment(doc: LocatedDoc, env: Mapping[str, str]) -> dict[str, str]:
    """Apply KLAB_ZFS_SOURCE/KLAB_ZFS_BRANCH to the document; return what was applied."""
    applied: dict[str, str] = {}
    source = env.get(ENV_ZFS_SOURCE, "").strip()
    branch = env.get(ENV_ZFS_BRANCH, "").strip()
    if source and not branch:
        raise UsageError(f"{ENV_ZFS_SOURCE} is set but {ENV_ZFS_BRANCH} is not: name the branch")
    if branch:
        url = source or UPSTREAM_ZFS
        _set(doc, ("zfs", "provider"), "git", Origin(f"${ENV_ZFS_BRANCH}", 0))
        _set(doc, ("zfs", "git"), {"url": url, "branch": branch}, Origin(f"${ENV_ZFS_BRANCH}", 0))
        doc.origins[("zfs", "git", "url")] = Origin(
            f"${ENV_ZFS_SOURCE}" if source else f"${ENV_ZFS_BRANCH}", 0
        )
        doc.origins[("zfs", "git", "branch")] = Origin(f"${ENV_ZFS_BRANCH}", 0)
        zfs = doc.data.get("zfs")
        if isinstance(zfs, dict):
            # Packages and repos describe the release build; a PR build replaces them.
            for key in ("repo", "release_rpm"):
                zfs.pop(key, None)
        applied[ENV_ZFS_SOURCE] = url
        applied[ENV_ZFS_BRANCH] = branch
    return applied


def validate_document(doc: LocatedDoc) -> DistroSpec:
    from pydantic import ValidationError

    from imagefactory.spec.model import DistroSpec

    try:
        spec = DistroSpec.model_validate(doc.data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, doc)) from None
    problem = golden_leaf_problem(spec)
    if problem is not None:
        path = ("zfs", "git", "branch")
        raise SpecError(f"{doc.origin_of(path)}: {dotted(path)}: {problem}")
    return spec


def is_layer(path: Path) -> bool:
    """`_defaults.yaml` and any other `_*` file: merged under specs, not a spec itself."""
    return path.name.startswith("_")


def validate_layer_file(path: Path) -> None:
    """Check a layer on its own: known keys and right types, nothing required."""
    from imagefactory.spec.layer import validate_layer

    if not path.is_file():
        raise UsageError(f"{path}: no such spec file")
    validate_layer(read_document(path))


def load_spec_file(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    defaults: Path | None = None,
    check_files: bool = True,
) -> tuple[DistroSpec, dict[str, str]]:
    """Validate one spec file on top of the defaults layer next to it (if any)."""
    env = os.environ if env is None else env
    if not path.is_file():
        raise UsageError(f"{path}: no such spec file")
    defaults = defaults if defaults is not None else path.parent / DEFAULTS_FILE
    doc = read_document(path)
    if defaults.is_file() and defaults.resolve() != path.resolve():
        doc = merge(read_document(defaults), doc)
    applied = apply_environment(doc, env)
    spec = validate_document(doc)
    if check_files:
        from imagefactory.spec.references import missing_references

        problems = missing_references(spec, doc)
        if problems:
            raise SpecError("\n".join(problems))
    return spec, applied


def spec_files(directory: Path | None = None) -> list[Path]:
    directory = directory or distros_dir()
    return sorted(
        p for p in directory.iterdir() if p.suffix in SPEC_SUFFIXES and not p.name.startswith("_")
    )


def _alias_table(directory: Path) -> dict[str, str]:
    """Name, short name and aliases → canonical spec name, read without full validation."""
    table: dict[str, str] = {}
    for path in spec_files(directory):
        if path.suffix == ".hcl":
            continue  # HCL twins mirror YAML specs; the YAML file is canonical for names
        data = read_document(path).data
        aliases = data.get("aliases", [])
        aliases = aliases if isinstance(aliases, list) else []  # validation reports it
        names = [data.get("name", path.stem), path.stem, data.get("short", ""), *aliases]
        for alias in names:
            if alias and isinstance(alias, str):
                table.setdefault(alias, path.stem)
    return table


def find_spec_path(name_or_path: str, directory: Path | None = None) -> Path:
    """A path, a spec name, a short name or an alias → the spec file; else suggest names."""
    candidate = Path(name_or_path)
    if candidate.suffix in SPEC_SUFFIXES or "/" in name_or_path:
        if not candidate.is_file():
            raise UsageError(f"{name_or_path}: no such spec file")
        return candidate
    directory = directory or distros_dir()
    table = _alias_table(directory)
    canonical = table.get(name_or_path)
    if canonical is None:
        close = difflib.get_close_matches(name_or_path, list(table), n=3, cutoff=0.6)
        suggestions = sorted({table[c] for c in close})
        hint = f"did you mean {' or '.join(suggestions)}?" if suggestions else None
        known = ", ".join(sorted(set(table.values())))
        raise UsageError(f"unknown distro {name_or_path!r} (known: {known})", hint=hint)
    for suffix in SPEC_SUFFIXES:
        path = directory / f"{canonical}{suffix}"
        if path.is_file():
            return path
    raise UsageError(f"unknown distro {name_or_path!r}")


def all_distro_names(directory: Path | None = None) -> list[str]:
    return sorted({p.stem for p in spec_files(directory) if p.suffix != ".hcl"})


def parse_kind(value: str | None, env: Mapping[str, str]) -> Lineage:
    """The lineage `value` (an option) or $KLAB_GOLDEN_KIND names: lean or ztest; the older
    spellings regular and golden mean lean (`settings.LINEAGE_ALIASES`)."""
    raw = value if value is not None else env.get(ENV_KIND, "lean")
    raw = raw.strip().lower() or "lean"
    lineage = settings.LINEAGE_ALIASES.get(raw)
    if lineage == "lean":
        return "lean"
    if lineage == "ztest":
        return "ztest"
    raise UsageError(f"{ENV_KIND if value is None else '--lineage'}={raw!r}: use lean or ztest")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def load_distro(
    name_or_path: str,
    *,
    lineage: str | None = None,
    force: bool | None = None,
    env: Mapping[str, str] | None = None,
    directory: Path | None = None,
) -> ResolvedSpec:
    """The entry point every command uses: find, merge, override, validate."""
    env = os.environ if env is None else env
    path = find_spec_path(name_or_path, directory)
    chosen = parse_kind(lineage, env)
    spec, applied = load_spec_file(path, env=env)
    force_rebuild = force if force is not None else _truthy(env.get(ENV_FORCE))
    if lineage is None and ENV_KIND in env:
        applied[ENV_KIND] = chosen
    if force is None and ENV_FORCE in env:
        applied[ENV_FORCE] = "1" if force_rebuild else "0"
    return ResolvedSpec(spec, path, chosen, force_rebuild, applied)
