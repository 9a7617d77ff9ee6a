"""`klab baseline suggest`: baseline entries for tests the history shows to be flaky.

klab baseline suggest [--last N] [--min-rate R] [--min-runs N] [--distro D]

Prints ready-to-paste YAML (the format of baselines/*.yaml) for tests that failed in at
least R of the runs they ran in, but not in all of them: a `flaky` entry per test and
distro, with the observed rate in its reason (`F:3/16`, kdevops' notation).  Tests the
baseline already covers (--baseline, $KLAB_BASELINE or baselines/) are left out.  The
history is only read.  Exit 0; 2 for a bad option or baseline; 3 for a damaged history.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagefactory import settings
from imagefactory.commands.history import add_db_option, last_runs
from imagefactory.testrun.history.values import argparse_type, parse_count, parse_ratio

DEFAULT_LAST = 100
DEFAULT_MIN_RATE = 0.02
DEFAULT_MIN_RUNS = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "baseline",
        help="work with baselines (known failures and flakes)",
        description="Work with the baselines that tests are judged against.",
    )
    actions = parser.add_subparsers(dest="baseline_action", metavar="ACTION", required=True)
    suggest = actions.add_parser(
        "suggest",
        help="entries for tests the history shows to fail often but not always",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    suggest.add_argument(
        "--last", metavar="N", type=last_runs, default=DEFAULT_LAST, help="runs (default 100)"
    )
    suggest.add_argument(
        "--min-rate",
        metavar="R",
        type=argparse_type(parse_ratio, "share"),
        default=DEFAULT_MIN_RATE,
        help=f"fail rate to suggest at, 5%% or 0.05 (default {DEFAULT_MIN_RATE * 100:g}%%)",
    )
    suggest.add_argument(
        "--min-runs",
        metavar="N",
        type=argparse_type(lambda t: parse_count(t, low=1, high=1_000_000), "count"),
        default=DEFAULT_MIN_RUNS,
        help=f"ignore tests seen in fewer runs: no rate yet (default {DEFAULT_MIN_RUNS})",
    )
    suggest.add_argument("--distro", metavar="D", help="only this distro")
    settings.add_baseline_options(suggest)
    add_db_option(suggest)
    suggest.set_defaults(handler=run_suggest)


def run_suggest(args: argparse.Namespace) -> int:
    from imagefactory.testrun.baseline import baseline_from_args
    from imagefactory.testrun.history import History, default_db_path
    from imagefactory.testrun.history.suggest import covered_by, render_yaml, suggestions
    from imagefactory.testrun.verdict import RunContext

    baseline = baseline_from_args(args)
    path: Path = args.db or default_db_path()
    if not path.exists():
        print(f"no test history yet ({path}): nothing to suggest", file=sys.stderr)
        return 0
    with History.open(path, readonly=True) as history:
        stats, window = history.flaky(last=args.last, distro=args.distro)
        stats = [s for s in stats if s.runs >= args.min_runs]
        contexts = {}
        for distro in sorted({s.distro for s in stats}):
            latest = history.runs(distro=distro, last=1)
            if latest:
                row = latest[0]
                contexts[distro] = RunContext(distro, row.zfs_version, row.kernel, row.accel)
    covered = covered_by(baseline, contexts) if baseline is not None else None
    found, already = suggestions(stats, window, min_rate=args.min_rate, covered=covered)
    header = [
        f"klab baseline suggest: the last {window} run(s) in {path}",
        f"tests failing in at least {args.min_rate:.0%} of at least {args.min_runs} runs, "
        "but not in all",
    ]
    if baseline is not None:
        files = ", ".join(baseline.files) or "no file"
        header.append(f"{already} more already covered by the baseline ({files})")
    if not found:
        header.append("nothing to suggest")
    sys.stdout.write(render_yaml(found, header=header))
    return 0
