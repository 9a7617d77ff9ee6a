"""`golden`, `golden-ztest` and `build`: build goldens through the pipeline."""

from __future__ import annotations

import argparse

from imagefactory.errors import NotBuiltYet
from imagefactory.spec.loader import all_distro_names, load_distro


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, kind, help_text in (
        ("golden", "regular", "build the lean golden of DISTRO (or all)"),
        ("golden-ztest", "ztest", "build the ztest golden of DISTRO (or all)"),
    ):
        parser = subparsers.add_parser(name, help=help_text)
        parser.add_argument("distro", metavar="DISTRO|all")
        parser.add_argument("--source", choices=("cloud_image", "bootstrap", "cloud"))
        parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
        parser.set_defaults(handler=run, kind=kind)


def run(args: argparse.Namespace) -> int:
    names = all_distro_names() if args.distro == "all" else [args.distro]
    for name in names:
        load_distro(name, kind=args.kind)  # a bad name or spec fails before anything else
    raise NotBuiltYet(
        "the build pipeline is not built yet (issue 5): specs resolve, but no golden can be made",
        hint="`imagefactory plan DISTRO` shows what a build will do",
    )
