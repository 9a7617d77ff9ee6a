"""The command line: `imagefactory`, `klab` and `python -m imagefactory` are one CLI.

Each verb lives in its own module under `imagefactory.commands` and registers itself, so a
new pipeline stage adds a file instead of growing this one.  Expected failures
(`ImageFactoryError`) become a one-line message plus hint and the error's exit status;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import structlog

from imagefactory import __version__, commands
from imagefactory.errors import ImageFactoryError
from imagefactory.log import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagefactory",
        description="Golden VM images for the OpenZFS ztest lineage and test runs in their clones.",
    )
    parser.add_argument("--version", action="version", version=f"imagefactory {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="log renderer (auto: console on a TTY, JSON lines otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_lines = {"auto": None, "console": False, "json": True}[args.log_format]
    configure_logging(args.verbose - args.quiet, json_lines=json_lines)
    try:
        status: int = args.handler(args)
    except ImageFactoryError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_status
    except BrokenPipeError:
        # `klab status | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        structlog.get_logger(__name__).warning("interrupted")
        return 130
    return status
