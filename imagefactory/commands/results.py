"""`klab results parse FILE [--json]`: read any zfs-tests.sh console log.

The same parser the test stage uses, so a log from a CI artifact, a bug report or a
colleague's machine can be judged the same way.  Exit 0 when the log was parsed (whatever
the tests did), 1 when it holds no test results at all: zfs-tests.sh exits 0 in that case,
and nothing ran is never a pass.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.testrun.matrix import format_duration
from imagefactory.testrun.results import ParsedRun, parse_file, parse_log
from imagefactory.testrun.tables import print_table


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "results",
        help="work with zfs-tests.sh results",
        description="Work with OpenZFS test-suite results produced anywhere.",
    )
    actions = parser.add_subparsers(dest="results_action", metavar="ACTION", required=True)
    parse = actions.add_parser(
        "parse",
        help="parse a zfs-tests.sh console log",
        description="Parse a zfs-tests.sh console log (2.2 to 2.4 formats, zts-report "
        "sections). Exit 0 when parsed, 1 when the log holds no test results.",
    )
    parse.add_argument("file", metavar="FILE", help="console log, or - for standard input")
    parse.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parse.set_defaults(handler=run_parse)


def _read(file: str) -> ParsedRun:
    if file == "-":
        return parse_log(sys.stdin.buffer.read().decode("utf-8", errors="replace"))
    path = Path(file)
    if not path.is_file():
        raise UsageError(f"{file}: no such file", hint="give the path of a zfs-tests.sh log")
    try:
        return parse_file(path)
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from exc


def _print_human(run: ParsedRun) -> None:
    rows = [
        [
            t.result,
            format_duration(t.duration_s),
            "RERAN" if t.reran else "",
            t.key,
        ]
        for t in run.tests
    ]
    if rows:
        print_table(["RESULT", "TIME", "", "TEST"], rows, right={1})
        print()
    summary = ", ".join(f"{k} {n}" for k, n in run.summary.items()) or "nothing ran"
    facts = ["complete" if run.complete else "INCOMPLETE: no Results Summary"]
    if run.running_time_s is not None:
        facts.append(format_duration(run.running_time_s))
    if run.percent_passed is not None:
        facts.append(f"{run.percent_passed:.1f}% passed")
    print(f"summary: {summary} ({'; '.join(facts)})")
    if run.log_dir:
        print(f"log directory: {run.log_dir}")
    if run.removed:
        print(f"not in this suite (dropped by test-runner): {', '.join(run.removed)}")
    for line in run.diagnostics:
        print(f"note: {line}")
    if run.report_present:
        if run.unexpected:
            print("unexpected (zts-report):")
            for entry in run.unexpected:
                print(f"    {entry.result} {entry.name} ({entry.detail})")
        else:
            print("unexpected (zts-report): none")


def run_parse(args: argparse.Namespace) -> int:
    run = _read(args.file)
    if args.json:
        json.dump(run.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif run.has_results:
        _print_human(run)
    source = "standard input" if args.file == "-" else args.file
    run.require_results(source)
    return 0
