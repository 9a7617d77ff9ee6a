"""`imagefactory plan DISTRO`: the resolved spec, the stages, and the golden it would make."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from imagefactory import settings
from imagefactory.spec.loader import ResolvedSpec, load_distro
from imagefactory.spec.names import planned_golden_name

STAGES: tuple[tuple[str, str], ...] = (
    ("resolve", "load, merge and validate the spec"),
    ("fetch", "download and verify the base image (or bootstrap it)"),
    ("volume", "create the build volume and write the image into it"),
    ("seed", "generate the cloud-init NoCloud seed"),
    ("boot", "boot under QEMU and run the hooks"),
    ("seal", "remove identity in the guest, power off, verify on the host"),
    ("publish", "snapshot @golden, read-only, provenance, atomic swap"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan", help="show the resolved spec, the build stages and the resulting golden name"
    )
    parser.add_argument("distro", metavar="DISTRO")
    settings.add_lineage_option(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--store", help="zfs:POOL/PATH or file:DIR whose golden name to show (default: see README)"
    )
    parser.set_defaults(handler=run)


def plan_document(resolved: ResolvedSpec, store: str | None = None) -> dict[str, Any]:
    spec = resolved.spec
    source_kind = spec.source.default
    return {
        "distro": spec.name,
        "spec_file": str(resolved.path),
        "lineage": resolved.lineage,
        "golden": planned_golden_name(resolved.golden_leaf, store),
        "force_rebuild": resolved.force_rebuild,
        "environment": resolved.overrides,
        "source": source_kind,
        "spec_digest": resolved.spec_digest,
        "stages": [{"name": name, "does": does} for name, does in STAGES],
        "spec": spec.model_dump(mode="json"),
    }


def run(args: argparse.Namespace) -> int:
    resolved = load_distro(args.distro, lineage=args.lineage)
    document = plan_document(resolved, args.store)
    if args.json:
        # allow_nan=False: the spec model refuses NaN and infinities; never print bare NaN.
        print(json.dumps(document, indent=2, allow_nan=False))
        return 0
    spec = resolved.spec
    print(f"distro:   {spec.name} ({spec.description})")
    print(f"spec:     {resolved.path}  {resolved.spec_digest[:19]}")
    print(f"lineage:  {resolved.lineage}")
    print(f"golden:   {document['golden']}")
    image = spec.source.cloud_image
    if image is not None:
        checksum = (
            f"pinned {image.digest}"
            if image.digest
            else f"{image.checksum.url} ({image.checksum.format})"
            if image.checksum
            else "none"
        )
        signed = (
            f", signed ({image.signature.kind}, {', '.join(image.signature.fingerprints)})"
            if image.signature
            else ", unsigned"
        )
        print(f"image:    {image.url}")
        print(f"checksum: {checksum}{signed}")
    if spec.source.bootstrap is not None:
        boot = spec.source.bootstrap
        print(f"bootstrap: {boot.suite} ({' '.join(boot.components)}), kernel {boot.kernel}")
    print(f"source:   {spec.source.default} (default)")
    zfs = spec.zfs
    origin = {
        "zfsonlinux": f"zfsonlinux repo {zfs.repo} ({zfs.release_rpm}), DKMS",
        "distro": "distro packages (DKMS)",
        "kernel": "module in the distro kernel",
        "git": f"git {zfs.git.url} branch {zfs.git.branch}, built in the guest"
        if zfs.git
        else "git",
    }[zfs.provider]
    print(f"zfs:      {zfs.version} from {origin}")
    if resolved.overrides:
        for key, value in resolved.overrides.items():
            print(f"env:      {key}={value}")
    if resolved.force_rebuild:
        print("force:    rebuild even if an identical golden exists")
    print("stages:")
    for index, (name, does) in enumerate(STAGES, 1):
        print(f"  {index}. {name:<8} {does}")
    hooks = spec.hooks.for_lineage(resolved.lineage)
    print(f"hooks ({resolved.lineage}):")
    for hook in hooks:
        print(f"  {hook.script}  (timeout {hook.timeout:g}s)")
    if not hooks:
        print("  (none)")
    print("resolved spec:")
    print(yaml.safe_dump(document["spec"], sort_keys=False, default_flow_style=False).rstrip())
    return 0
