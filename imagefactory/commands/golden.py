"""`golden`, `golden-ztest` and `build`: build goldens through the pipeline."""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from imagefactory.builder.context import BuildOptions, SourceKind
from imagefactory.builder.pipeline import BuildOutcome, build_golden
from imagefactory.errors import ImageFactoryError, UsageError
from imagefactory.fetch.cache import ImageCache, default_cache_root
from imagefactory.fetch.download_errors import check_mirror_url
from imagefactory.fetch.image import resolve_site_mirror
from imagefactory.spec.loader import ResolvedSpec, all_distro_names, load_distro
from imagefactory.store.select import open_store

log = structlog.get_logger(__name__)


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("distro", metavar="DISTRO|all")
    parser.add_argument(
        "--source",
        choices=("cloud_image", "cloud", "bootstrap"),
        help="base image: the vendor's cloud image or a bootstrap from a package mirror",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--on-error",
        choices=("cleanup", "abort"),
        default="cleanup",
        help="abort keeps the stopped VM's volume and logs for debugging",
    )
    parser.add_argument("--store", help="zfs:POOL/PATH or file:DIR (default: see README)")
    parser.add_argument("--cache-dir", type=Path, help="image cache (IMAGEFACTORY_CACHE)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--mirror", help="site mirror for vendor images (IMAGEFACTORY_MIRROR)")
    parser.add_argument("--package-mirror", help="Debian mirror for bootstrap (default: apt's)")
    parser.add_argument("--jobs", type=int, default=1, help="build several distros at once")
    parser.add_argument("--no-wait", action="store_true", help="fail if the golden is locked")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, kind, help_text in (
        ("golden", "regular", "build the lean golden of DISTRO (or all)"),
        ("golden-ztest", "ztest", "build the ztest golden of DISTRO (or all)"),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        _add_build_options(parser)
        parser.set_defaults(handler=run, kind=kind)
    parser = subparsers.add_parser("build", help="build a golden of either lineage")
    _add_build_options(parser)
    parser.add_argument("--kind", choices=("regular", "ztest"), default=None)
    parser.set_defaults(handler=run)


def _source(value: str | None) -> SourceKind | None:
    if value in ("cloud", "cloud_image"):
        return "cloud_image"
    if value == "bootstrap":
        return "bootstrap"
    return None


def _jobs_limit(requested: int, specs: list[ResolvedSpec]) -> int:
    """No more parallel builds than memory (each VM's RAM + 1 GiB) and cores allow."""
    if requested < 1:
        raise UsageError("--jobs must be at least 1")
    pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    biggest = max(int(r.spec.vm.memory) for r in specs) + 1024**3
    by_memory = max(1, pages // biggest)
    by_cores = max(1, (os.cpu_count() or 1) // max(r.spec.vm.cpus for r in specs))
    return max(1, min(requested, by_memory, by_cores, len(specs)))


def run(args: argparse.Namespace) -> int:
    # Input that would only fail after the spec loads, the lock and the fetch: first.
    resolve_site_mirror(args.mirror)
    if args.package_mirror is not None:
        check_mirror_url(args.package_mirror, "--package-mirror")
    cache = ImageCache(args.cache_dir or default_cache_root()).check_root(create=True)
    names = all_distro_names() if args.distro == "all" else [args.distro]
    specs = [
        load_distro(name, kind=args.kind, force=True if args.force else None) for name in names
    ]
    store = open_store(args.store)
    options = BuildOptions(
        source=_source(args.source),
        on_error=args.on_error,
        accel=args.accel,
        site_mirror=args.mirror,
        package_mirror=args.package_mirror,
        wait_for_lock=not args.no_wait,
    )
    jobs = _jobs_limit(args.jobs, specs)

    def one(resolved: ResolvedSpec) -> tuple[str, BuildOutcome | ImageFactoryError]:
        try:
            return resolved.spec.name, build_golden(resolved, store, cache, options)
        except ImageFactoryError as exc:
            if len(specs) == 1:
                raise
            log.error("build.failed", distro=resolved.spec.name, error=str(exc))
            return resolved.spec.name, exc

    if jobs == 1:
        results = [one(r) for r in specs]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(one, specs))
    failed = 0
    for name, result in results:
        if isinstance(result, ImageFactoryError):
            failed += 1
            print(f"FAILED  {name}: {str(result).splitlines()[0]}", file=sys.stderr)
            continue
        golden = result.golden
        where = golden.name if golden else "?"
        if result.up_to_date:
            print(f"up to date  {name}: {where} (use --force to rebuild)")
        else:
            print(f"built  {name}: {where}  ({result.wall_seconds:.0f}s, build {result.build_dir})")
    return 1 if failed else 0
