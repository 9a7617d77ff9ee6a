"""`imagefactory export DISTRO|GOLDEN --format FMT [--out FILE]`: a golden for another
hypervisor or cloud.

    imagefactory export debian13 --format qcow2              klab-golden-debian.qcow2
    imagefactory export fedora --lineage ztest --format ova  klab-ztest-fedora.ova
    imagefactory export klab-golden-rocky --format vhd --out /srv/images/rocky.vhd

Formats: qcow2 (compressed), vmdk (streamOptimized: ESXi, VirtualBox), vhd (fixed, size a
whole MiB: Azure), vhdx (Hyper-V), raw (sparse), gce (tar.gz holding disk.raw: Compute
Engine), ova (OVF 1.0 + SHA-1 manifest: VMware, VirtualBox).  Next to the export:
`<file>.json` (the golden's provenance) and SHA256SUMS.  The file appears under its name
only once complete.  Exit status: 0 exported, 2 a bad name, format or path, 3 qemu-img,
the store or the disk failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.errors import EXIT_OK, ImageFactoryError, UsageError

if TYPE_CHECKING:
    from imagefactory.spec.loader import ResolvedSpec
    from imagefactory.store.base import Golden, Store

#: Kept in step with imagefactory/export/formats.py (a unit test holds them together);
#: listed here so building the parser imports nothing of the exporter.
FORMAT_CHOICES = ("qcow2", "vmdk", "vhd", "vhdx", "ova", "raw", "gce")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a golden as qcow2, vmdk, vhd, vhdx, ova, raw or gce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="DISTRO|GOLDEN", help="a distro name or a golden's name")
    parser.add_argument("--format", required=True, choices=FORMAT_CHOICES)
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write it (default: ./<golden><ext>)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing FILE")
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar: on a terminal (auto), always or never",
    )
    settings.add_lineage_option(parser)
    settings.add_store_option(parser)
    parser.set_defaults(handler=run)


def _spec_for(name: str, lineage: str) -> ResolvedSpec | None:
    from imagefactory.spec.loader import load_distro

    try:
        return load_distro(name, lineage=lineage)
    except ImageFactoryError:
        return None


def find_golden(
    store: Store, target: str, lineage: str | None
) -> tuple[Golden, ResolvedSpec | None]:
    """A golden by its name, else the golden of the distro `target` in `lineage`."""
    from imagefactory.store.base import NotInStore
    from imagefactory.store.names import parse_child

    parsed = parse_child(target)
    if parsed is not None and parsed.kind == "golden":
        golden = store.get_golden(target)
        if golden is not None:
            prov = golden.provenance
            return golden, _spec_for(prov.distro, prov.lineage) if prov.distro else None
    chosen = lineage or settings.LINEAGE.value() or "lean"
    resolved = _spec_for(target, chosen)
    if resolved is None:
        leaves = sorted(g.leaf for g in store.list_goldens())
        raise UsageError(
            f"{target}: no golden of that name in {store.spec}, and no such distro",
            hint=f"goldens here: {', '.join(leaves)}"
            if leaves
            else "build one first: imagefactory golden DISTRO",
        )
    golden = store.get_golden(resolved.golden_leaf)
    if golden is None:
        verb = "golden-ztest" if resolved.lineage == "ztest" else "golden"
        raise NotInStore(
            f"no golden {resolved.golden_leaf} in {store.spec}",
            hint=f"build it: imagefactory {verb} {resolved.spec.name}",
        )
    return golden, resolved


def _out_path(args: argparse.Namespace, leaf: str, extension: str) -> Path:
    out: Path = args.out if args.out is not None else Path(f"{leaf}{extension}")
    out = out.expanduser().absolute()
    if any(c in out.name for c in "\n\r\\") or out.name.startswith("."):
        raise UsageError(
            f"--out {args.out}: give a plain file name (no leading dot, newline or \\)"
        )
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the directory {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory", hint="give a file name")
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists", hint="remove it, choose another --out, or add --force")
    return out


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from imagefactory.export.export import ExportRequest, export_golden
    from imagefactory.export.formats import FORMATS, MIB
    from imagefactory.store.select import open_store

    store = open_store(args.store)
    golden, resolved = find_golden(store, args.target, args.lineage)
    fmt = FORMATS[args.format]
    out = _out_path(args, golden.leaf, fmt.extension)
    if golden.moved:  # a copied store: check the bytes once before shipping them anywhere
        _say(f"{golden.leaf}: {store.verify(golden.leaf)}")
    vm = resolved.spec.vm if resolved is not None else None
    request = ExportRequest(
        store=store,
        golden=golden,
        format=fmt,
        out=out,
        cpus=vm.cpus if vm is not None else 2,
        memory_mib=int(vm.memory) // MIB if vm is not None else 2048,
        progress={"auto": None, "always": True, "never": False}[args.progress],
    )
    result = export_golden(request, say=_say)
    print(f"{result.path}  {args.format}  {result.size} bytes  sha256 {result.sha256}")
    print(f"  provenance: {result.sidecar}")
    print(f"  checksums:  {result.sums}")
    return EXIT_OK
