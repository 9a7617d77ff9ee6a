"""The lab's distros and the names of their release goldens, read without the models.

`klab status` lists every distro's release golden in both lineages, present or not, and
must start within a few interpreter start-ups; validating five specs loads pydantic and the
models (about ten bare starts).  A golden's name needs two facts of a spec: its short name,
and whether it builds OpenZFS from git (then the name carries the branch).  So the spec
files are read here with the loader's own reader and layered on the defaults as the loader
layers them, and the name comes from the one rule in spec/names.py.  Validation is skipped
only where it cannot change the name: a documented short name and a provider other than
git.  Any other spec -- a git source (its name depends on the validated URL and branch) or
a short name the model would refuse -- goes through the validating loader and its
line-numbered errors, exactly as every other command reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagefactory import settings
from imagefactory.paths import distros_dir
from imagefactory.spec.loader import (
    DEFAULTS_FILE,
    load_spec_file,
    merge,
    read_document,
    spec_files,
)
from imagefactory.spec.located import LocatedDoc
from imagefactory.spec.names import DOCUMENTED_ORDER, documented_rank, golden_leaf, release_leaf


@dataclass(frozen=True)
class DistroGoldens:
    """One distro spec and its release goldens' names (no environment: no PR branch)."""

    spec: str
    """The spec's file name without its suffix (`debian13`), as commands take it."""
    short: str
    """The name goldens and documentation use (`debian`)."""
    leaves: Mapping[str, str]
    """Lineage (lean, ztest) → the release golden's leaf (`klab-ztest-debian`)."""


def release_goldens(directory: Path | None = None) -> list[DistroGoldens]:
    """Every distro spec in `directory` (default: the distros directory), in the
    documentation's order (centos rocky fedora debian ubuntu); HCL twins of YAML specs are
    skipped, as everywhere names are listed."""
    directory = directory or distros_dir()
    defaults_path = directory / DEFAULTS_FILE
    defaults = read_document(defaults_path) if defaults_path.is_file() else None
    paths = [path for path in spec_files(directory) if path.suffix != ".hcl"]
    return sorted((_goldens_of(path, defaults) for path in paths), key=_documented_position)


def _goldens_of(path: Path, defaults: LocatedDoc | None) -> DistroGoldens:
    doc = read_document(path)
    if defaults is not None:
        doc = merge(defaults, doc)
    short = doc.data.get("short")
    zfs = doc.data.get("zfs")
    provider = zfs.get("provider") if isinstance(zfs, dict) else None
    if short in DOCUMENTED_ORDER and isinstance(provider, str) and provider != "git":
        leaves = {lineage: release_leaf(short, lineage) for lineage in settings.LINEAGE_CHOICES}
        return DistroGoldens(spec=path.stem, short=short, leaves=leaves)
    # The name depends on validated values: read the spec as every command reads it.
    from imagefactory.spec.model import LINEAGES

    spec, _ = load_spec_file(path, env={}, check_files=False)
    leaves = {lineage: golden_leaf(spec, lineage) for lineage in LINEAGES}
    return DistroGoldens(spec=path.stem, short=spec.short, leaves=leaves)


def _documented_position(distro: DistroGoldens) -> tuple[int, str, str]:
    return (*documented_rank(distro.short), distro.spec)
