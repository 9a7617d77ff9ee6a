"""`klab history`: past test runs, one test's record, flake rates, and what changed.

klab history [--distro D] [--last N]          runs, newest first, one line per distro
klab history --test T [--distro D]            one test across runs (name, basename or glob)
klab history --flaky [--last N] [--distro D]  per test and distro: runs, failures, rate,
                                              severity (low <= 1 %, medium <= 5 %, high)
klab history --diff RUN_A RUN_B [--distro D]  new failures, fixed, newly flaky, new, gone,
klab history --diff-last [--distro D]         and tests that got slower (timing); RUN is a
                                              run id, a unique prefix, last or last~N

The history is only read (opened read-only): it works on a read-only mount or a copy.
Exit 0; 2 for a bad option or an unknown run; 3 when the history file is damaged.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory import settings
from imagefactory.errors import UsageError
from imagefactory.testrun.history.trends import TimingThresholds
from imagefactory.testrun.history.values import (
    argparse_type,
    parse_count,
    parse_ratio,
    parse_run_ref,
    parse_seconds,
)

if TYPE_CHECKING:
    from imagefactory.testrun.history import DistroRow, FlakyStat, RunDiff, TestRow

DEFAULT_LAST = 10
DEFAULT_LAST_FLAKY = 100

last_runs = argparse_type(parse_count, "count")
run_ref = argparse_type(parse_run_ref, "run")


def add_db_option(parser: argparse.ArgumentParser) -> None:
    settings.add_history_option(parser, "--db", dest="db")


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    defaults = TimingThresholds()
    parser.add_argument(
        "--slower",
        metavar="PCT",
        type=argparse_type(lambda t: parse_ratio(t, high=100.0), "percentage"),
        default=defaults.ratio,
        help=f"timing: flag a rise above PCT of the median (default {defaults.ratio * 100:g}%%)",
    )
    parser.add_argument(
        "--slower-by",
        metavar="SECONDS",
        type=argparse_type(parse_seconds, "duration"),
        default=defaults.seconds,
        help=f"timing: ...that is also at least this long (default {defaults.seconds:g}s)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="past test runs, flake rates and how results changed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--distro", metavar="D", help="only this distro")
    parser.add_argument(
        "--last",
        metavar="N",
        type=last_runs,
        help=f"runs to look at (default {DEFAULT_LAST}, {DEFAULT_LAST_FLAKY} with --flaky)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--test", metavar="T", help="one test's results across runs")
    mode.add_argument("--flaky", action="store_true", help="flake rates per test and distro")
    mode.add_argument(
        "--diff", nargs=2, metavar=("RUN_A", "RUN_B"), type=run_ref, help="changes from A to B"
    )
    mode.add_argument(
        "--diff-last",
        action="store_true",
        help="what changed since the previous run of the same selection",
    )
    parser.add_argument("--selection", metavar="S", help="with --diff-last: this selection")
    add_timing_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_db_option(parser)
    parser.add_argument(  # scale-out (commands/_scale.py): what every shard balances by
        "--export-durations",
        type=Path,
        metavar="FILE",
        help="write each test's median duration over the last runs (--last, --distro) "
        "to FILE, for klab test|rc --durations FILE --shard I/N",
    )
    parser.set_defaults(handler=run_history)


def _started(iso: str) -> str:
    return iso.replace("T", " ")[:16]


def _show_runs(rows: list[DistroRow]) -> None:
    from imagefactory.testrun.tables import format_duration, print_table

    table = [
        [
            r.run_id,
            _started(r.started),
            r.selection,
            r.distro,
            r.zfs_version or "?",
            r.status,
            str(r.passed),
            str(r.skipped),
            str(r.failed),
            str(r.killed),
            str(r.absent),
            format_duration(r.duration_s),
        ]
        for r in rows
    ]
    headers = ["RUN", "STARTED", "SELECTION", "DISTRO", "ZFS", "STATUS"]
    headers += ["PASS", "SKIP", "FAIL", "KILL", "ABSENT", "TIME"]
    print_table(headers, table, right=set(range(6, 12)))


def _result_text(result: str, attempts: tuple[str, ...], reran: bool = False) -> str:
    if len(attempts) > 1:
        return f"{result} ({' → '.join(attempts)})"
    return result + (" (RERAN)" if reran else "")


def _show_tests(rows: list[TestRow]) -> None:
    from imagefactory.testrun.tables import format_duration, print_table

    table = [
        [
            r.run_id,
            _started(r.started),
            r.distro,
            r.zfs_version or "?",
            r.key,
            _result_text(r.result, r.attempts, r.reran),
            r.verdict or "?",
            format_duration(r.duration_s),
            r.log_path or "",
        ]
        for r in rows
    ]
    headers = ["RUN", "STARTED", "DISTRO", "ZFS", "TEST", "RESULT", "VERDICT", "TIME", "LOG"]
    print_table(headers, table, right={7})


def _show_flaky(stats: list[FlakyStat], window: int, asked: int) -> None:
    from imagefactory.testrun.tables import print_table

    print(f"flake rates over the last {window} run(s)" + (f" of {asked} asked" * (window < asked)))
    if not stats:
        print("no test failed in these runs")
        return
    table = [
        [
            s.distro,
            s.key,
            str(s.runs),
            str(s.failures),
            f"{s.rate:.1%}",
            s.severity + (" (always)" if s.always else ""),
            ",".join(s.results) or "-",
            f"{s.last_failed_run} ({_started(s.last_failed)})",
        ]
        for s in stats
    ]
    headers = ["DISTRO", "TEST", "RUNS", "FAILED", "RATE", "SEVERITY", "RESULTS", "LAST FAILED"]
    print_table(headers, table, right={2, 3, 4})


def _cell(result: str | None, verdict: str | None) -> str:
    if result is None:
        return "-"
    return f"{result} ({verdict})" if verdict else result


def _show_diff(diff: RunDiff, thresholds: TimingThresholds) -> None:
    from imagefactory.testrun.tables import format_duration, print_table

    print(f"selection {diff.selection}: {diff.previous} -> {diff.current}")
    for name, before, after in diff.status_changes:
        print(f"{name}: {before or '(not run)'} -> {after or '(not run)'}")
    grouped = diff.by_distro()
    if not grouped and not diff.status_changes:
        print("no change")
    if grouped:
        rows = [
            [
                c.kind,
                c.distro,
                c.test,
                _cell(c.before, c.before_verdict),
                _cell(c.after, c.after_verdict),
            ]
            for changes in grouped.values()
            for c in changes
        ]
        print_table(["CHANGE", "DISTRO", "TEST", "BEFORE", "AFTER"], rows)
    print()
    if not diff.timing_compared:
        print(f"timing: no test had {thresholds.min_samples} earlier passing runs to compare with")
    elif not diff.timing:
        print(f"timing: none of {diff.timing_compared} tests compared got slower")
    else:
        count = f"{len(diff.timing)} of {diff.timing_compared} tests compared"
        print(f"timing: {count} are {thresholds.describe()}:")
        rows = [
            [
                r.distro,
                r.test,
                format_duration(r.duration_s),
                format_duration(r.median_s),
                f"+{r.rise:.0%}" if r.median_s > 0 else "-",
                str(r.samples),
            ]
            for r in diff.timing
        ]
        print_table(["DISTRO", "TEST", "NOW", "MEDIAN", "RISE", "RUNS"], rows, right={2, 3, 4, 5})


def _diff_json(diff: RunDiff, thresholds: TimingThresholds) -> dict[str, Any]:
    return {
        "selection": diff.selection,
        "previous": diff.previous,
        "current": diff.current,
        "status_changes": [
            {"distro": d, "before": b, "after": a} for d, b, a in diff.status_changes
        ],
        "changes": [{**asdict(c), "kind": c.kind} for c in diff.changes],
        "timing": {
            "thresholds": asdict(thresholds),
            "compared": diff.timing_compared,
            "slower": [r.to_json() for r in diff.timing],
        },
    }


def run_history(args: argparse.Namespace) -> int:
    from imagefactory.testrun.history import History, default_db_path

    if args.export_durations is not None:
        from imagefactory.commands._scale import export_durations

        return export_durations(args, default_last=DEFAULT_LAST)
    if args.selection and not args.diff_last:
        raise UsageError("--selection only applies to --diff-last")
    if args.last is not None and (args.diff or args.diff_last):
        raise UsageError("--last does not apply to --diff or --diff-last")
    thresholds = TimingThresholds(ratio=args.slower, seconds=args.slower_by)
    path: Path = args.db or default_db_path()
    if not path.exists():
        if args.diff:
            raise UsageError(f"no test history yet ({path}): no run {args.diff[0].text}")
        print(f"no test history yet ({path})", file=sys.stderr)
        if args.json:
            empty: object = None if args.diff_last else {"runs": 0, "tests": []}
            print(json.dumps(empty if args.diff_last or args.flaky else []))
        return 0
    with History.open(path, readonly=True) as history:
        if args.diff or args.diff_last:
            diff: RunDiff | None
            if args.diff:
                before, after = (history.resolve_run(ref) for ref in args.diff)
                diff = history.diff(before, after, distro=args.distro, timing=thresholds)
            else:
                diff = history.diff_last(args.selection, distro=args.distro, timing=thresholds)
            if args.json:
                print(json.dumps(_diff_json(diff, thresholds) if diff else None, indent=2))
            elif diff is None:
                print("no runs in the test history")
            elif diff.previous is None:
                print(f"no earlier run of selection {diff.selection} to compare with")
            else:
                _show_diff(diff, thresholds)
            return 0
        if args.flaky:
            asked = args.last or DEFAULT_LAST_FLAKY
            stats, window = history.flaky(last=asked, distro=args.distro)
            if args.json:
                data = {"runs": window, "tests": [s.to_json() for s in stats]}
                print(json.dumps(data, indent=2))
            else:
                _show_flaky(stats, window, asked)
            return 0
        last = args.last or DEFAULT_LAST
        if args.test:
            tests = history.test_history(args.test, distro=args.distro, last=last)
            if args.json:
                print(json.dumps([{**asdict(r), "key": r.key} for r in tests], indent=2))
            elif not tests:
                print(f"no results for {args.test}")
            else:
                _show_tests(tests)
            return 0
        runs = history.runs(distro=args.distro, last=last)
        if args.json:
            print(json.dumps([asdict(r) for r in runs], indent=2))
        elif not runs:
            print("no runs in the test history")
        else:
            _show_runs(runs)
    return 0
