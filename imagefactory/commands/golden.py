"""`golden`, `golden-ztest` and `build`: build goldens through the pipeline.

`golden` builds the lean lineage (klab-golden-*), `golden-ztest` the ztest lineage
(klab-ztest-*), `build --lineage lean|ztest` either.  With `all`, one distro's failure does
not stop the others; the exit status is the worst of them in errors.py's table (a usage
error 2, an infrastructure failure 3, as a single build would exit).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from imagefactory import settings

if TYPE_CHECKING:
    from imagefactory.builder.context import SourceKind
    from imagefactory.builder.pipeline import BuildOutcome
    from imagefactory.errors import ImageFactoryError
    from imagefactory.spec.loader import ResolvedSpec


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("distro", metavar="DISTRO|all")
    settings.add_source_option(
        parser, "base image: the vendor's cloud image or a bootstrap from a package mirror"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--on-error",
        choices=("cleanup", "abort"),
        default="cleanup",
        help="abort keeps the stopped VM's volume and logs for debugging",
    )
    settings.add_store_option(parser)
    settings.add_cache_dir_option(parser)
    settings.add_accel_option(parser)
    settings.add_mirror_option(parser)
    settings.add_package_mirror_option(parser)
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="build several distros at once (at most what the host's memory and cores carry)",
    )
    parser.add_argument("--no-wait", action="store_true", help="fail if the golden is locked")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, lineage, help_text in (
        ("golden", "lean", "build the lean golden (klab-golden-*) of DISTRO (or all)"),
        ("golden-ztest", "ztest", "build the ztest golden (klab-ztest-*) of DISTRO (or all)"),
    ):
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        _add_build_options(parser)
        parser.set_defaults(handler=run, lineage=lineage)
    parser = subparsers.add_parser("build", help="build a golden of either lineage")
    _add_build_options(parser)
    settings.add_lineage_option(parser)
    parser.set_defaults(handler=run)


def _source(value: str | None) -> SourceKind | None:
    if value in ("cloud", "cloud_image"):
        return "cloud_image"
    if value == "bootstrap":
        return "bootstrap"
    return None


def _report(results: list[tuple[str, BuildOutcome | ImageFactoryError]]) -> int:
    from imagefactory.errors import ImageFactoryError, worst_exit_status

    statuses = []
    for name, result in results:
        if isinstance(result, ImageFactoryError):
            statuses.append(result.exit_status)
            print(f"FAILED  {name}: {str(result).splitlines()[0]}", file=sys.stderr)
            continue
        golden = result.golden
        where = golden.name if golden else "?"
        if result.up_to_date:
            print(f"up to date  {name}: {where} (use --force to rebuild)")
        else:
            print(f"built  {name}: {where}  ({result.wall_seconds:.0f}s, build {result.build_dir})")
    return worst_exit_status(statuses)


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import structlog

    from imagefactory.builder.context import BuildOptions
    from imagefactory.builder.pipeline import build_golden
    from imagefactory.errors import ImageFactoryError
    from imagefactory.fetch.cache import ImageCache
    from imagefactory.fetch.download_errors import check_mirror_url
    from imagefactory.fetch.image import resolve_site_mirror
    from imagefactory.spec.loader import all_distro_names, load_distro
    from imagefactory.store.select import open_store
    from imagefactory.testrun.jobs import resolve_jobs

    log = structlog.get_logger(__name__)
    # Input that would only fail after the spec loads, the lock and the fetch: first.
    resolve_site_mirror(args.mirror)
    if args.package_mirror is not None:
        check_mirror_url(args.package_mirror, "--package-mirror")
    cache = ImageCache(args.cache_dir or settings.cache_dir()).check_root(create=True)
    names = all_distro_names() if args.distro == "all" else [args.distro]
    force = True if args.force else None
    specs = [load_distro(name, lineage=args.lineage, force=force) for name in names]
    store = open_store(args.store)
    options = BuildOptions(
        source=_source(args.source),
        on_error=args.on_error,
        accel=args.accel,
        site_mirror=args.mirror,
        package_mirror=args.package_mirror,
        wait_for_lock=not args.no_wait,
    )
    jobs = resolve_jobs(args.jobs, [r.spec for r in specs], within_host=True)

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
    return _report(results)
