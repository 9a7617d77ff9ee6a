"""`imagefactory fetch DISTRO`: download, verify and cache a distro's cloud image.

Prints ``<digest>  <cached path>`` on stdout (the path is what later stages read) and exits 0;
any failure is one line on stderr with a non-zero status.  Running it twice downloads once.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings

if TYPE_CHECKING:
    from imagefactory.fetch.cache import ImageCache

# The CLI imports every command module to build its parser: the fetch machinery (requests,
# rich, pydantic models) is imported inside the handlers, only when a command runs.


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fetch",
        help="download and verify a distro's cloud image into the cache",
        description="Download the distro's cloud image (retrying and resuming), verify it "
        "against the spec's pinned digest or the vendor's signed checksum file, and store it "
        "in the content-addressed cache.  Prints the digest and the cached path.",
    )
    parser.add_argument("distro", metavar="DISTRO|SPEC")
    settings.add_cache_dir_option(parser)
    settings.add_mirror_option(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal; log events otherwise)",
    )
    parser.set_defaults(handler=run)


def cache_from_args(args: argparse.Namespace, *, create: bool = True) -> ImageCache:
    """The cache the command names, checked: `create` for commands that write into it."""
    from imagefactory.fetch.cache import ImageCache

    root: Path | None = args.cache_dir
    cache = ImageCache(root if root is not None else settings.cache_dir())
    return cache.check_root(create=create)


def run(args: argparse.Namespace) -> int:
    from imagefactory.errors import UsageError
    from imagefactory.fetch.image import fetch_cloud_image, resolve_site_mirror
    from imagefactory.paths import keys_dir
    from imagefactory.spec.loader import load_distro

    resolve_site_mirror(args.mirror)  # a bad --mirror or $IMAGEFACTORY_MIRROR fails first
    cache = cache_from_args(args)
    resolved = load_distro(args.distro)
    source = resolved.spec.source.cloud_image
    if source is None:
        raise UsageError(f"{resolved.spec.name} has no cloud_image source to fetch")
    result = fetch_cloud_image(
        source,
        cache,
        site_mirror=args.mirror,
        keys_dir=keys_dir(),
        progress=args.progress,
    )
    print(f"{result.digest}  {result.path}")
    return 0
