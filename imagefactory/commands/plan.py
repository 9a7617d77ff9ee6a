"""`imagefactory plan DISTRO`: the resolved spec, the stages, and the golden it would make."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory import settings

if TYPE_CHECKING:
    from imagefactory.builder.forecast import Forecast
    from imagefactory.spec.loader import ResolvedSpec


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan", help="show the resolved spec, the build stages and the resulting golden name"
    )
    parser.add_argument("distro", metavar="DISTRO")
    settings.add_lineage_option(parser)
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    settings.add_store_option(parser)
    # What `golden` takes to pick its base image: the forecast is of that very build.
    settings.add_source_option(parser, "forecast a build from this base image (as `golden`)")
    settings.add_cache_dir_option(parser)
    settings.add_package_mirror_option(parser)
    parser.set_defaults(handler=run)


def plan_document(
    resolved: ResolvedSpec, store: str | None = None, forecast: Forecast | None = None
) -> dict[str, Any]:
    from imagefactory.spec.names import planned_golden_name

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
        "stages": [
            {"name": s.name, "does": s.does, "status": s.status, "detail": s.detail}
            for s in (forecast.stages if forecast else [])
        ],
        "identity": forecast.identity.record() if forecast and forecast.identity else None,
        "rebuild": {
            "due": forecast.rebuild_due if forecast else None,
            "reasons": forecast.reasons if forecast else [],
            "notes": forecast.notes if forecast else [],
        },
        "spec": spec.model_dump(mode="json"),
    }


def run(args: argparse.Namespace) -> int:
    import yaml  # the spec machinery (pydantic, hcl2): only when the command runs

    from imagefactory.spec.loader import load_distro

    resolved = load_distro(args.distro, lineage=args.lineage)
    document = plan_document(resolved, args.store, _forecast(resolved, args))
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
    _print_forecast(document)
    hooks = spec.hooks.for_lineage(resolved.lineage)
    print(f"hooks ({resolved.lineage}):")
    for hook in hooks:
        print(f"  {hook.script}  (timeout {hook.timeout:g}s)")
    if not hooks:
        print("  (none)")
    print("resolved spec:")
    print(yaml.safe_dump(document["spec"], sort_keys=False, default_flow_style=False).rstrip())
    return 0


def _forecast(resolved: ResolvedSpec, args: argparse.Namespace) -> Forecast:
    """What a build would do now (builder/forecast.py); a store that cannot be opened here
    leaves whether a rebuild is due unknown, and says why."""
    from imagefactory.builder.context import SourceKind
    from imagefactory.builder.forecast import Forecast, forecast
    from imagefactory.errors import ImageFactoryError
    from imagefactory.fetch.cache import ImageCache
    from imagefactory.store import open_store
    from imagefactory.store.select import parse_store_spec, resolve_store_spec

    try:
        kind, location = parse_store_spec(resolve_store_spec(args.store))
        # Opening a files store creates its directory: plan creates nothing.
        exists = kind != "file" or Path(location).expanduser().is_dir()
        store = open_store(args.store) if exists else None
    except ImageFactoryError as exc:
        return Forecast(None, None, [], [], [f"store: {exc}"])
    source: SourceKind | None = (
        "bootstrap" if args.source == "bootstrap" else "cloud_image" if args.source else None
    )
    return forecast(
        resolved,
        store,
        ImageCache(args.cache_dir or settings.cache_dir()),
        source_kind=source,
        package_mirror=args.package_mirror,
    )


def _print_forecast(document: dict[str, Any]) -> None:
    print("stages:")
    for index, stage in enumerate(document["stages"], 1):
        print(f"  {index}. {stage['name']:<10} {stage['status']:<8} {stage['does']}")
        if stage["detail"]:
            print(f"     {'':<10} {'':<8} {stage['detail']}")
    if document["identity"]:
        print(f"identity: {document['identity'].split()[1].removeprefix('id=')}")
    rebuild = document["rebuild"]
    if rebuild["due"] is None:
        print("rebuild:  unknown")
    elif rebuild["due"]:
        print("rebuild:  due")
        for reason in rebuild["reasons"]:
            print(f"  - {reason}")
    else:
        print("rebuild:  not due: the golden is up to date")
    for note in rebuild["notes"]:
        print(f"note:     {note}")
