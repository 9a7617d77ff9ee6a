"""`klab history`: past test runs, one test's track record, or what changed since last time.

klab history [--distro D] [--last N]       runs, newest first, one line per distro
klab history --test T [--distro D]         one test across runs (name, basename or glob)
klab history --diff-last [--selection S]   changes since the previous run of that selection
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from imagefactory.errors import UsageError
from imagefactory.testrun.history import (
    DistroRow,
    History,
    RunDiff,
    TestRow,
    default_db_path,
)
from imagefactory.testrun.matrix import format_duration
from imagefactory.testrun.tables import print_table


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "history",
        help="past test runs and how results changed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--distro", metavar="D", help="only this distro")
    parser.add_argument("--test", metavar="T", help="one test's results across runs")
    parser.add_argument("--last", metavar="N", type=int, default=10, help="runs (default 10)")
    parser.add_argument(
        "--diff-last",
        action="store_true",
        help="what changed since the previous run of the same selection",
    )
    parser.add_argument("--selection", metavar="S", help="with --diff-last: this selection")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--db", metavar="PATH", type=Path, help="history file (default: klab's state dir)"
    )
    parser.set_defaults(handler=run_history)


def _started(iso: str) -> str:
    return iso.replace("T", " ")[:16]


def _show_runs(rows: list[DistroRow]) -> None:
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


def _show_tests(rows: list[TestRow]) -> None:
    table = [
        [
            r.run_id,
            _started(r.started),
            r.distro,
            r.zfs_version or "?",
            r.key,
            r.result + (" (RERAN)" if r.reran else ""),
            format_duration(r.duration_s),
            r.log_path or "",
        ]
        for r in rows
    ]
    headers = ["RUN", "STARTED", "DISTRO", "ZFS", "TEST", "RESULT", "TIME", "LOG"]
    print_table(headers, table, right={6})


def _show_diff(diff: RunDiff, distro: str | None) -> None:
    print(f"selection {diff.selection}: {diff.previous} -> {diff.current}")
    statuses = [s for s in diff.status_changes if distro is None or s[0] == distro]
    for name, before, after in statuses:
        print(f"{name}: {before or '(not run)'} -> {after or '(not run)'}")
    changes = [c for c in diff.changes if distro is None or c.distro == distro]
    if not changes and not statuses:
        print("no change")
        return
    if changes:
        rows = [[c.kind, c.distro, c.test, c.before or "-", c.after or "-"] for c in changes]
        print_table(["CHANGE", "DISTRO", "TEST", "BEFORE", "AFTER"], rows)


def _diff_json(diff: RunDiff, distro: str | None) -> dict[str, Any]:
    return {
        "selection": diff.selection,
        "previous": diff.previous,
        "current": diff.current,
        "status_changes": [
            {"distro": d, "before": b, "after": a}
            for d, b, a in diff.status_changes
            if distro is None or d == distro
        ],
        "changes": [
            {**asdict(c), "kind": c.kind}
            for c in diff.changes
            if distro is None or c.distro == distro
        ],
    }


def run_history(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise UsageError("--last must be at least 1")
    if args.diff_last and args.test:
        raise UsageError("--diff-last and --test cannot be combined")
    if args.selection and not args.diff_last:
        raise UsageError("--selection only applies to --diff-last")
    path: Path = args.db or default_db_path()
    if not path.exists():
        print(f"no test history yet ({path})", file=sys.stderr)
        if args.json:
            print("null" if args.diff_last else "[]")
        return 0
    with History.open(path) as history:
        if args.diff_last:
            diff = history.diff_last(args.selection)
            if args.json:
                print(json.dumps(_diff_json(diff, args.distro) if diff else None, indent=2))
            elif diff is None:
                print("no runs in the test history")
            elif diff.previous is None:
                print(f"no earlier run of selection {diff.selection} to compare with")
            else:
                _show_diff(diff, args.distro)
            return 0
        if args.test:
            tests = history.test_history(args.test, distro=args.distro, last=args.last)
            if args.json:
                print(json.dumps([{**asdict(r), "key": r.key} for r in tests], indent=2))
            elif not tests:
                print(f"no results for {args.test}")
            else:
                _show_tests(tests)
            return 0
        runs = history.runs(distro=args.distro, last=args.last)
        if args.json:
            print(json.dumps([asdict(r) for r in runs], indent=2))
        elif not runs:
            print("no runs in the test history")
        else:
            _show_runs(runs)
    return 0
