"""`klab status`: every lineage and distro — present or not, when built, which ZFS, size.

One unusable golden (a corrupt manifest, forged properties) never hides the others: it is
listed as `damaged` with the reason.  A golden of a copied files store is `moved, not
verified` until `imagefactory verify` (or `klab test`) has checked its digest.
"""

from __future__ import annotations

import argparse
import json

from imagefactory.builder.statedir import build_dir
from imagefactory.errors import UsageError
from imagefactory.spec.loader import all_distro_names, load_distro
from imagefactory.spec.model import LINEAGES
from imagefactory.store.base import Golden
from imagefactory.store.select import open_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("status", help="show the goldens of both lineages")
    parser.add_argument("--store", help="zfs:POOL/PATH or file:DIR")
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f}G"


def guest_facts(golden: Golden) -> dict[str, object]:
    """The payload facts the build recorded (from its manifest), empty if unknown."""
    try:
        manifest = build_dir(golden.leaf, golden.provenance.build_id) / "manifest.json"
        data = json.loads(manifest.read_bytes()[: 16 << 20])
    except (UsageError, OSError, ValueError, RecursionError):
        return {}
    facts = data.get("guest_facts")
    return facts if isinstance(facts, dict) else {}


def payload_marks(golden: Golden) -> str:
    """`zfs-2.3.9 ✅, ksh ✅, zfs-tests.sh ✅, vdev images ✅` for ztest goldens."""
    facts = guest_facts(golden)
    version = golden.provenance.zfs_version

    def mark(ok: object) -> str:
        return "✅" if ok else "❌"

    return ", ".join(
        [
            f"zfs-{version or '?'} {mark(version)}",
            f"ksh {mark(facts.get('ksh'))}",
            f"zfs-tests.sh {mark(facts.get('zfs_tests_sh'))}",
            f"vdev images {mark(facts.get('vdevs'))}",
        ]
    )


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    goldens = {g.leaf: g for g in store.list_goldens()}
    damaged = store.damaged()
    rows = []
    for lineage in LINEAGES:
        for name in all_distro_names():
            resolved = load_distro(name, lineage=lineage, env={})
            golden = goldens.get(resolved.golden_leaf)
            row: dict[str, object] = {
                "lineage": lineage,
                "distro": name,
                "golden": resolved.golden_leaf,
                "present": golden is not None,
            }
            if resolved.golden_leaf in damaged:
                row["damaged"] = damaged[resolved.golden_leaf]
            if golden is not None:
                prov = golden.provenance
                row.update(
                    name=golden.name,
                    built_at=prov.built_at,
                    build_id=prov.build_id,
                    zfs_version=prov.zfs_version,
                    suite_version=prov.suite_version,
                    virtual_size=golden.virtual_size,
                    allocated=golden.allocated,
                    clones=len(golden.clones),
                    verified=not golden.moved,
                )
                if lineage == "ztest":
                    row["payload"] = payload_marks(golden)
            rows.append(row)
    if args.json:
        print(json.dumps({"store": store.spec, "goldens": rows}, indent=2))
        return 0
    print(f"store: {store.spec}")
    for row in rows:
        label = f"{row['lineage']:<6} {row['distro']:<9}"
        if row.get("damaged"):
            print(f"{label} damaged   ({row['golden']}: {row['damaged']})")
            continue
        if not row["present"]:
            print(f"{label} absent    ({row['golden']})")
            continue
        size = f"{_gib(int(str(row['allocated'])))}/{_gib(int(str(row['virtual_size'])))}"
        zfs = row.get("zfs_version") or "-"
        state = "present" if row["verified"] else "moved"
        line = f"{label} {state:<9} built {row['built_at']}  zfs {zfs}  size {size}"
        if not row["verified"]:
            line += "  (moved, not verified: run imagefactory verify)"
        if row.get("payload"):
            line += f"  {row['payload']}"
        print(line)
    return 0
