"""`klab results merge RUNDIR... [--out DIR]`: shards from different machines as one run.

Registered by `commands/results.py` as one of its actions.  Every RUNDIR is a run
directory written by `klab test`, `klab rc` (a shard: `--shard i/N`) or an earlier merge;
the result is one run directory (matrix.txt, summary.md, junit.xml, run.json, each piece's
artifacts under `<distro>/shard-<i>-of-<N>/`) and the merged run's rows in the history.
Merging the same directories again changes nothing.  Exit status as for `klab test`: 0 all
as expected, 1 test failures, 2 runs that are not parts of one run (different selections,
snapshots, goldens, baselines: --force merges anyway) or a bad directory, 3 a missing shard
(the merged run is incomplete) or an infrastructure failure in one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from imagefactory import settings


def add_merge(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = actions.add_parser(
        "merge",
        help="merge run directories from several machines (shards) into one run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUNDIR")
    parser.add_argument("--out", type=Path, metavar="DIR", help="the merged run directory")
    parser.add_argument(
        "--force", action="store_true", help="merge runs that differ (selection, golden...)"
    )
    settings.add_history_option(parser)
    settings.add_baseline_options(parser)
    parser.set_defaults(handler=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    from imagefactory.testrun.baseline import baseline_from_args
    from imagefactory.testrun.matrix import print_matrix
    from imagefactory.testrun.merge import merge_runs

    merged = merge_runs(
        args.runs,
        args.out,
        runs_root=settings.runs_dir(),
        baseline=baseline_from_args(args),
        history=args.history,
        force=args.force,
    )
    for line in merged.skipped:
        print(f"skipped: {line}")
    for line in merged.notes:
        print(f"note: {line}")
    print_matrix(merged.matrix)
    print()
    for distro, shards in merged.missing.items():
        print(f"incomplete: {distro} is missing shard(s) {', '.join(map(str, shards))}")
    print(f"run {merged.run_id}: {merged.run_dir}")
    for name in ("summary", "junit", "run"):
        print(f"  {merged.files[name]}")
    return merged.exit_status
