"""`klab report [RUN|last] [--out FILE]`: one self-contained HTML page of a test run.

klab report                         the last run, written to its run directory's report.html
klab report last~1 --out /tmp/r.html
klab report 20261201T110000Z-abc    a run id (or a unique prefix) from the history
klab report /var/log/klab/<run-id>  a run directory, also one copied from elsewhere

The page holds the matrix (verdict colours, sticky headers), per distro the golden (build
id, OpenZFS and kernel versions) and wall time, every unexpected failure with the end of
its log and links to its artifacts, the bpftrace charts (zio latency, txg syncs), the
trends from the history (pass rate, slowest tests, tests that got slower) and, after
`klab rc`, the fingerprint drift table.  Everything is inlined: it opens from file:// with
no network.  `klab test` and `klab rc` write it into every run directory.  Exit status: 0
written, 2 no such run or not a run directory, 3 the file cannot be written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagefactory.errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a run's self-contained HTML report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run", nargs="?", default="last", metavar="RUN|last", help="run directory, run id or last~N"
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write (default: RUN/report.html)"
    )
    parser.add_argument(
        "--history", type=Path, metavar="PATH", help="history file (default: klab's state dir)"
    )
    parser.set_defaults(handler=run)


def _newest_run_dir(root: Path) -> Path | None:
    runs = [p for p in root.glob("*/run.json") if p.is_file()] if root.is_dir() else []
    return max(runs, key=lambda p: p.parent.name).parent if runs else None


def locate_run(text: str, history: Path | None) -> Path:
    """A run directory from what the user typed: a directory, or a run of the history."""
    from imagefactory.testrun.artifacts import run_dir
    from imagefactory.testrun.history import History, default_db_path, parse_run_ref

    given = Path(text)
    if given.is_dir():
        return given
    if "/" in text:
        raise UsageError(f"{text}: no such run directory", hint="`klab history` lists the runs")
    path = history or default_db_path()
    if not path.exists():
        if text == "last":
            newest = _newest_run_dir(run_dir("x").parent)
            if newest is not None:
                return newest
        raise UsageError(
            f"no run directory {text} and no test history at {path}",
            hint="give a run directory, or run `klab test` first",
        )
    try:
        ref = parse_run_ref(text)
    except ValueError as exc:
        raise UsageError(f"{exc}", hint="give a run directory, a run id, last or last~N") from exc
    with History.open(path, readonly=True) as db:
        stored = db.resolve_run(ref)
        rows = db.run_distros(stored)
    candidates = [run_dir(stored.run_id)]
    candidates += [Path(r.artifacts_dir).parent for r in rows.values() if r.artifacts_dir]
    for candidate in candidates:
        if (candidate / "run.json").is_file():
            return candidate
    raise UsageError(
        f"run {stored.run_id} is in the history but its run directory is gone "
        f"(looked in {', '.join(str(c) for c in dict.fromkeys(candidates))})",
        hint="give the run directory's path if it was moved",
    )


def run(args: argparse.Namespace) -> int:
    from imagefactory.report.render import write_report

    directory = locate_run(args.run, args.history)
    written = write_report(directory, args.out, history=args.history)
    print(written)
    return 0
