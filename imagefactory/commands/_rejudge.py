"""`klab results rejudge RUN`: a stored run judged again against today's baselines.

Registered by `commands/results.py` as one of its actions.  RUN is a run id, a unique
prefix of one, `last` or `last~N`.  Prints the verdicts that changed since the run was
recorded (a new baseline entry turns an unexpected failure into an expected one; a retired
one, the other way).  Exit 0 when, judged today, no test failed unexpectedly; 1 when one
did; 2 for a bad option, baseline or run; 3 for a damaged history.  The history is only
read: the recorded verdicts stay as they were.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory import settings
from imagefactory.commands.history import add_db_option, run_ref
from imagefactory.errors import EXIT_OK, EXIT_TEST_FAILURES, UsageError

if TYPE_CHECKING:
    from imagefactory.testrun.history.rejudge import Rejudged


def add_rejudge(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "rejudge",
        help="judge a stored run again against today's baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", metavar="RUN", type=run_ref, help="run id, prefix, last, last~N")
    parser.add_argument("--distro", metavar="D", help="only this distro")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    settings.add_baseline_options(parser)
    add_db_option(parser)
    parser.set_defaults(handler=run_rejudge)


def _digest(value: str | None) -> str:
    return value[:12] if value else "none"


def _show(result: Rejudged) -> None:
    from imagefactory.testrun.tables import print_table

    baseline = result.baseline
    against = (
        f"{', '.join(baseline.files)} ({_digest(baseline.digest)})"
        if baseline is not None
        else "no baseline (raw results)"
    )
    print(f"run {result.run.run_id} ({result.run.selection}) judged again against {against}")
    for distro, digest in result.recorded_digests.items():
        print(f"  {distro}: recorded with baseline {_digest(digest)}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if not result.changes:
        print("no verdict changed")
    else:
        rows = [
            [
                c.distro,
                c.after.name,
                " → ".join(c.after.attempts) or c.after.result,
                c.before or "?",
                c.after.verdict.value,
                c.after.reason or "",
            ]
            for c in result.changes
        ]
        print_table(["DISTRO", "TEST", "RESULT", "WAS", "NOW", "REASON"], rows)
    failing = result.failing
    print(f"judged today: {len(failing)} unexpected failure(s)")


def _json(result: Rejudged) -> dict[str, Any]:
    baseline = result.baseline
    return {
        "run": result.run.run_id,
        "baseline": None
        if baseline is None
        else {"digest": baseline.digest, "files": list(baseline.files)},
        "recorded_baseline_digests": result.recorded_digests,
        "changes": [c.to_json() for c in result.changes],
        "unexpected_failures": [{"distro": d, **v.to_json()} for d, v in result.failing],
        "warnings": result.warnings,
    }


def run_rejudge(args: argparse.Namespace) -> int:
    from imagefactory.testrun.baseline import baseline_from_args
    from imagefactory.testrun.history import History, default_db_path
    from imagefactory.testrun.history.rejudge import rejudge

    baseline = baseline_from_args(args)
    path: Path = args.db or default_db_path()
    if not path.exists():
        raise UsageError(f"no test history yet ({path}): no run {args.run.text} to rejudge")
    with History.open(path, readonly=True) as history:
        run = history.resolve_run(args.run)
        result = rejudge(history, run, baseline, distro=args.distro)
    if args.distro is not None and not result.verdicts:
        raise UsageError(f"run {run.run_id} did not run on {args.distro}")
    if args.json:
        json.dump(_json(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _show(result)
    return EXIT_TEST_FAILURES if result.failing else EXIT_OK
