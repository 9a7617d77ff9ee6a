"""The command line: `imagefactory`, `klab` and `python -m imagefactory` are one CLI.

Each verb lives in its own module under `imagefactory.commands` and registers itself, so a
new pipeline stage adds a file instead of growing this one.  `main` is the one place where
an exception ends the program: `errors.classify` turns expected failures (ours, and OS,
network, database and validation errors) into one line, a hint and the exit status of the
table in `errors.py`; anything else is a bug, reported in one line with its traceback saved
to a file (printed with `-v`).

Building the parser imports every command module, so those modules import only argparse
and `imagefactory.settings` at the top and everything heavy (pydantic, requests, rich,
qemu.qmp, pycdlib, structlog) inside their handlers: `klab --help` and the quick commands
start in a few interpreter start-ups (bench/cli_start.py measures it; a unit test keeps
the heavy libraries out of `import imagefactory.cli`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from imagefactory import commands, settings
from imagefactory.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, classify


class _VersionAction(argparse.Action):
    """`--version`, reading the installed version only when asked (importlib.metadata is slow)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        from imagefactory import __version__

        parser.exit(message=f"imagefactory {__version__}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagefactory",
        description="Golden VM images for the OpenZFS ztest lineage and test runs in their clones.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output; tracebacks"
    )
    parser.add_argument("-q", "--quiet", action="count", default=0, help="less log output")
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="log renderer (auto: console on a TTY, JSON lines otherwise)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue  # a part of a command (commands/_rejudge.py), registered by that command
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(subparsers)
    return parser


def _save_traceback(exc: BaseException) -> Path | None:
    """Write a bug's traceback under the state directory; None if that is impossible too."""
    try:
        from imagefactory.builder.statedir import crashes_dir

        path = crashes_dir() / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.txt"
        path.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    except Exception:  # the report of a bug must not raise a second one
        return None
    return path


def report(exc: BaseException, *, prog: str, verbose: bool) -> int:
    """Print `exc` as the user should see it and return the exit status."""
    from imagefactory.log import redact

    failure = classify(exc)
    if failure is None:
        if verbose:
            traceback.print_exception(exc, file=sys.stderr)
        saved = None if verbose else _save_traceback(exc)
        if not verbose and saved is None:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"{prog}: internal error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        where = f"the traceback is in {saved}" if saved else "the traceback is above"
        print(f"hint: this is a bug in imagefactory; {where} (-v prints it)", file=sys.stderr)
        return EXIT_INTERNAL
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"{prog}: error: {redact(failure.message)}", file=sys.stderr)
    if failure.hint:
        print(f"hint: {failure.hint}", file=sys.stderr)
    return failure.exit_status


def _shipped_recipes_on_first_run() -> None:
    """The first `klab` run as root puts the shipped recipes where the documentation says
    (testrun/recipe_install.py: a few stats when nothing changed); a failure to do so is a
    warning, never the command's end."""
    if os.geteuid() != 0:
        return
    from imagefactory.testrun.recipe_install import install_on_first_run

    try:
        written = install_on_first_run()
    except OSError as exc:
        from imagefactory.log import get_logger  # structlog loads only if there is news

        get_logger(__name__).warning("recipes.not_installed", error=str(exc))
        return
    if written:
        from imagefactory.log import get_logger

        get_logger(__name__).info("recipes.installed", directory=str(written[0].parent))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from imagefactory.log import configure_logging  # structlog: only once a command runs

    settings.skip_pydantic_plugins()

    json_lines = {"auto": None, "console": False, "json": True}[args.log_format]
    configure_logging(args.verbose - args.quiet, json_lines=json_lines)
    _shipped_recipes_on_first_run()
    try:
        status: int = args.handler(args)
    except BrokenPipeError:
        # `klab status | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        import structlog

        structlog.get_logger(__name__).warning("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report(exc, prog=parser.prog, verbose=args.verbose > 0)
    return status
