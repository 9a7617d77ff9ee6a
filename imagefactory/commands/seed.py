"""`imagefactory seed DISTRO --out DIR`: write a build's cloud-init seed for inspection.

The same seed a build boots with (user-data, meta-data, network-config, seed.iso; one
adapter, `vm/fromspec.py`, makes both), plus the per-build SSH key pair it authorises, so a
person can read it, validate it with `cloud-init schema`, or boot an image with it by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog

from imagefactory.errors import UsageError
from imagefactory.spec.loader import load_distro
from imagefactory.vm.fromspec import hook_plan, seed_files
from imagefactory.vm.seed import DEFAULT_MAC, build_key_comment, generate_ssh_key

log = structlog.get_logger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "seed", help="write the cloud-init NoCloud seed of a build (files and seed.iso)"
    )
    parser.add_argument("distro", metavar="DISTRO")
    parser.add_argument("--kind", choices=("regular", "ztest"), help="golden lineage")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--mac", default=DEFAULT_MAC, help=f"MAC address the network-config matches ({DEFAULT_MAC})"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"--out {out} exists and is not a directory",
            hint="name a directory (it is created if missing); nothing was written",
        )
    resolved = load_distro(args.distro, kind=args.kind)
    spec = resolved.spec
    out.mkdir(parents=True, exist_ok=True)
    key = generate_ssh_key(out / "ssh", build_key_comment(spec.name))
    seed = seed_files(spec, hook_plan(resolved), key, mac=args.mac)
    seed.write_dir(out)
    seed.write_iso(out / "seed.iso")
    log.info("seed.written", distro=spec.name, kind=resolved.kind, out=str(out))
    for name in ("user-data", "meta-data", "network-config", "seed.iso", "ssh/id_ed25519"):
        print(out / name)
    return 0
