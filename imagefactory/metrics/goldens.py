"""The goldens a scrape reports: one row per golden present in the store.

The store is listed read-only (`list_goldens`, what `klab status` shows); the build's wall
time comes from the build's own manifest (`<build dir>/manifest.json`, `wall_seconds`) and
is simply missing when that directory was pruned or the golden was built elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from imagefactory.builder.statedir import build_dir
from imagefactory.errors import UsageError
from imagefactory.store.base import Golden, Store

MAX_MANIFEST_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class GoldenRow:
    lineage: str
    distro: str
    build_id: str
    zfs_version: str
    built: float | None
    """Unix time; None when the provenance's timestamp cannot be read."""
    allocated: int
    virtual_size: int
    build_seconds: float | None


def _unix(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def build_seconds(golden: Golden) -> float | None:
    """The build's wall time from its manifest, None when unknown."""
    try:
        manifest = build_dir(golden.leaf, golden.provenance.build_id) / "manifest.json"
        with manifest.open("rb") as handle:
            data = json.loads(handle.read(MAX_MANIFEST_BYTES))
    except (UsageError, OSError, ValueError, RecursionError):
        return None
    wall = data.get("wall_seconds") if isinstance(data, dict) else None
    if isinstance(wall, int | float) and not isinstance(wall, bool) and wall >= 0:
        return float(wall)
    return None


def golden_rows(store: Store) -> list[GoldenRow]:
    rows = []
    for golden in store.list_goldens():
        prov = golden.provenance
        rows.append(
            GoldenRow(
                lineage=prov.lineage,
                distro=prov.distro,
                build_id=prov.build_id,
                zfs_version=prov.zfs_version or "",
                built=_unix(prov.built_at),
                allocated=golden.allocated,
                virtual_size=golden.virtual_size,
                build_seconds=build_seconds(golden),
            )
        )
    rows.sort(key=lambda r: (r.lineage, r.distro))
    return rows
