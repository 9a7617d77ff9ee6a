"""`klab results parse|judge LOG`: read and judge any zfs-tests.sh console log, no VM.

klab results parse LOG [--json]
klab results judge LOG [--baseline FILE|DIR] [--no-baseline] [--distro D] [--zfs-version V]
                       [--kernel K] [--accel tcg|kvm] [--json] [--record [--history PATH]]

The same parser and judge the test stage uses, so a log from a CI artifact, a bug report or
a colleague's machine is judged the same way.  `parse` exits 0 when the log was parsed
(whatever the tests did); `judge` exits 0 when no test failed unexpectedly, 1 when one did
(or crashed, or the summary counts a failure no line shows, or the run was cut short).  Both
exit 1 when the log holds no test results at all: zfs-tests.sh exits 0 in that case, and
nothing ran is never a pass.  2: usage errors (a bad baseline, --record without --distro).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.commands._merge import add_merge
from imagefactory.commands._rejudge import add_rejudge
from imagefactory.errors import EXIT_OK, EXIT_TEST_FAILURES, UsageError

if TYPE_CHECKING:  # the parser and the judge are imported when a command runs
    from imagefactory.testrun.baseline import Baseline
    from imagefactory.testrun.outcome import DistroOutcome
    from imagefactory.testrun.results import ParsedRun
    from imagefactory.testrun.verdict import TestVerdict

RECORDED_SELECTION = "log"
"""The selection a judged log is recorded under (diffs compare runs of one selection)."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    judge = actions.add_parser(
        "judge",
        help="judge a zfs-tests.sh console log against the baselines",
        description="Judge a zfs-tests.sh console log against the baselines, with no VM: "
        "every test gets a verdict (pass, expected, unexpected-failure, unexpected-pass, "
        "skip, flaky, absent, crashed). Exit 0 when nothing failed unexpectedly, 1 when "
        "something did or the log holds no result, 2 for usage errors.",
    )
    judge.add_argument("file", metavar="LOG", help="console log, or - for standard input")
    judge.add_argument("--distro", metavar="D", help="the distro it ran on (baseline scope)")
    judge.add_argument("--zfs-version", metavar="V", help="the OpenZFS version (2.3.9-1...)")
    judge.add_argument("--kernel", metavar="K", help="the kernel release (uname -r)")
    judge.add_argument("--accel", choices=("tcg", "kvm"), help="how the VM was accelerated")
    judge.add_argument("--json", action="store_true", help="print JSON instead of text")
    judge.add_argument(
        "--record", action="store_true", help="store the judged log in the history (needs --distro)"
    )
    settings.add_history_option(judge)
    settings.add_baseline_options(judge)
    judge.set_defaults(handler=run_judge)
    add_rejudge(actions)  # `klab results rejudge RUN`: commands/_rejudge.py
    add_merge(actions)  # `klab results merge RUNDIR...`: commands/_merge.py


def _read(file: str) -> ParsedRun:
    from imagefactory.testrun.results import parse_file, parse_log

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
    from imagefactory.testrun.tables import format_duration, print_table

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


def _verdict_row(v: TestVerdict) -> list[str]:
    from imagefactory.testrun.matrix import SYMBOLS, mark

    tries = ",".join(v.attempts) if len(v.attempts) > 1 else ""
    why = (v.reason or "") + (f" [{v.entry}]" if v.entry else "")
    return [SYMBOLS[mark(v)], v.result, tries, v.name, why]


def _print_judgement(outcome: DistroOutcome, baseline: Baseline | None) -> None:
    from imagefactory.testrun.tables import print_table
    from imagefactory.testrun.verdict import Verdict

    judgement = outcome.judgement
    sections = (
        ("unexpected failures", (Verdict.UNEXPECTED_FAILURE, Verdict.CRASHED)),
        ("unexpected passes (stale baseline entries)", (Verdict.UNEXPECTED_PASS,)),
        ("flaky (failed, then passed on a retry)", (Verdict.FLAKY,)),
        ("expected (baseline)", (Verdict.EXPECTED,)),
        ("skips (no baseline entry)", (Verdict.SKIP,)),
    )
    for title, verdicts in sections:
        rows = [_verdict_row(v) for v in judgement.of(*verdicts)]
        if rows:
            print(f"{title}:")
            print_table(["", "RESULT", "ATTEMPTS", "TEST", "WHY"], rows)
            print()
    for title, lines in (
        ("zts-report disagrees", judgement.disagreements),
        ("baseline entries to review", [*judgement.review, *judgement.warnings]),
    ):
        if lines:
            print(f"{title}:")
            for line in lines:
                print(f"    {line}")
            print()
    if judgement.mismatch_line:
        print(f"note: {judgement.mismatch_line}")
    if baseline is None:
        print("baseline: none (--no-baseline): raw results")
    else:
        digest = (baseline.digest or "")[:12] or "-"
        print(
            f"baseline: {len(baseline.entries)} entries in {len(baseline.files)} file(s) "
            f"(digest {digest})"
        )
    counts = ", ".join(f"{n} {verdict}" for verdict, n in judgement.counts().items() if n)
    print(f"verdicts: {counts or 'none'}")
    print(f"judged: {outcome.status}" + (f": {outcome.message}" if outcome.message else ""))


def _notes_to_stderr(outcome: DistroOutcome) -> None:
    """With --json, stdout holds the JSON only; what a reader must still see goes here."""
    judgement = outcome.judgement
    for line in (*judgement.disagreements, *judgement.review, *judgement.warnings):
        print(f"note: {line}", file=sys.stderr)


def _record(args: argparse.Namespace, outcome: DistroOutcome) -> str:
    from imagefactory.testrun.history import History, new_run_id

    run_id = new_run_id()
    with History.open(args.history) as history:
        history.start_run(run_id, selection=RECORDED_SELECTION, command=["klab", *sys.argv[1:]])
        history.record_outcome(run_id, outcome)
        history.finish_run(run_id)
    return run_id


def run_judge(args: argparse.Namespace) -> int:
    from imagefactory.testrun.baseline import baseline_from_args
    from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
    from imagefactory.testrun.verdict import RunContext

    if args.record and not args.distro:
        raise UsageError("--record needs --distro", hint="the history keeps runs per distro")
    baseline = baseline_from_args(args)
    run = _read(args.file)
    context = RunContext(
        distro=args.distro, zfs_version=args.zfs_version, kernel=args.kernel, accel=args.accel
    )
    outcome = DistroOutcome.from_parsed(
        args.distro or "log",
        run,
        zfs_version=args.zfs_version,
        baseline=baseline,
        context=context,
    )
    if args.json:
        json.dump(outcome.judgement.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        _notes_to_stderr(outcome)
    elif run.has_results:
        _print_judgement(outcome, baseline)
    source = "standard input" if args.file == "-" else args.file
    run.require_results(source)
    if args.record:
        run_id = _record(args, outcome)
        print(f"recorded as run {run_id} ({args.distro})", file=sys.stderr)
    return EXIT_OK if outcome.status is DistroStatus.PASSED else EXIT_TEST_FAILURES
