"""`imagefactory validate [SPEC|DISTRO...]`: check specs without touching anything else."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagefactory.errors import ImageFactoryError, SpecError
from imagefactory.spec.loader import find_spec_path, load_spec_file, spec_files


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate distro specs (all of distros/ when none is named)",
        description="Validate spec files or distro names; errors are printed as "
        "file:line: field: message and the exit status is 2.",
    )
    parser.add_argument("specs", nargs="*", metavar="SPEC|DISTRO")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    targets: list[Path] = (
        [find_spec_path(name) for name in args.specs] if args.specs else spec_files()
    )
    failed = 0
    for path in targets:
        try:
            spec, _ = load_spec_file(path, env={})
        except SpecError as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        except ImageFactoryError as exc:
            failed += 1
            print(f"{path}: {exc}", file=sys.stderr)
            continue
        print(f"ok  {path}  ({spec.name}: {spec.description or spec.family})")
    if failed:
        print(f"{failed} of {len(targets)} spec(s) invalid", file=sys.stderr)
        return 2
    return 0
