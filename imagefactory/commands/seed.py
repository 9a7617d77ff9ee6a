"""`imagefactory seed DISTRO --out DIR`: write a build's cloud-init seed for inspection.

The same seed a build boots with (user-data, meta-data, network-config, seed.iso; one
adapter, `vm/fromspec.py`, makes both), plus the per-build SSH key pair it authorises, so a
person can read it, validate it with `cloud-init schema`, or boot an image with it by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagefactory import settings
from imagefactory.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "seed", help="write the cloud-init NoCloud seed of a build (files and seed.iso)"
    )
    parser.add_argument("distro", metavar="DISTRO")
    settings.add_lineage_option(parser)
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--mac", help="MAC address the network-config matches (default: the build VM's)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import structlog  # the seed machinery (pycdlib, pydantic): only when the command runs

    from imagefactory.fetch.git_refs import pin_zfs_source
    from imagefactory.spec.loader import load_distro
    from imagefactory.vm.fromspec import hook_plan, seed_files
    from imagefactory.vm.qemu_args import DEFAULT_MAC
    from imagefactory.vm.seed import build_key_comment, generate_ssh_key

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"--out {out} exists and is not a directory",
            hint="name a directory (it is created if missing); nothing was written",
        )
    # A PR build's seed pins the commit its branch is at now, as the build does.
    resolved = pin_zfs_source(load_distro(args.distro, lineage=args.lineage))
    spec = resolved.spec
    out.mkdir(parents=True, exist_ok=True)
    key = generate_ssh_key(out / "ssh", build_key_comment(spec.name))
    seed = seed_files(spec, hook_plan(resolved), key, mac=args.mac or DEFAULT_MAC)
    seed.write_dir(out)
    seed.write_iso(out / "seed.iso")
    structlog.get_logger(__name__).info(
        "seed.written", distro=spec.name, lineage=resolved.lineage, out=str(out)
    )
    for name in ("user-data", "meta-data", "network-config", "seed.iso", "ssh/id_ed25519"):
        print(out / name)
    return 0
