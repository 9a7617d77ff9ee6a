"""The Markdown summary of a run, for release-candidate notes and CI job summaries.

It leads with what a reader must act on — per-distro status, then unexpected results (with
why), stale baseline entries, flaky tests, where zts-report disagrees with our verdicts —
then what was expected and why, the skips, rows where distros disagree, and the full matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from imagefactory.atomic import write_atomic
from imagefactory.testrun.matrix import (
    REGRESSION,
    SYMBOLS,
    Matrix,
    MatrixRow,
    build_matrix,
    format_duration,
    legend,
    mark,
)
from imagefactory.testrun.outcome import DistroOutcome, stage_exit_status
from imagefactory.testrun.verdict import TestVerdict, Verdict


def _md(text: str | None) -> str:
    return (text or "—").replace("|", "\\|").replace("\n", " ")


def _matrix_table(matrix: Matrix, rows: Sequence[MatrixRow]) -> list[str]:
    head = ["group" if matrix.grouped else "test", *matrix.distros, ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"`{row.label}`", *(c.text(matrix.grouped) for c in row.cells)]
        cells.append(REGRESSION.replace("<", "&lt;") if row.regression else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict_line(v: TestVerdict) -> str:
    tries = f" (attempts: {', '.join(v.attempts)})" if len(v.attempts) > 1 else ""
    why = f" — {_md(v.reason)}" if v.reason else ""
    where = f" [{v.entry}]" if v.entry else ""
    return f"- {SYMBOLS[mark(v)]} `{v.name}` {v.result}{tries}{why}{where}"


def _section(
    title: str,
    outcomes: Sequence[DistroOutcome],
    lines_of: Callable[[DistroOutcome], list[str]],
) -> list[str]:
    """`## title`, then `### distro` and its lines for each distro that has any."""
    body: list[str] = []
    for o in outcomes:
        lines = lines_of(o)
        if lines:
            body += [f"### {o.distro}", "", *lines, ""]
    return [f"## {title}", "", *body] if body else []


def _problems(o: DistroOutcome) -> list[str]:
    lines = [f"- {o.status}: {_md(o.message)}"] if o.message else []
    if o.judgement.mismatch_line:
        lines.append(f"- {_md(o.judgement.mismatch_line)}")
    lines += [_verdict_line(v) for v in o.with_verdict(Verdict.UNEXPECTED_FAILURE, Verdict.CRASHED)]
    return lines


def _of(*verdicts: Verdict) -> Callable[[DistroOutcome], list[str]]:
    return lambda o: [_verdict_line(v) for v in o.with_verdict(*verdicts)]


def _baseline_notes(o: DistroOutcome) -> list[str]:
    return [f"- {_md(line)}" for line in (*o.judgement.review, *o.judgement.warnings)]


def markdown_summary(
    outcomes: Sequence[DistroOutcome],
    *,
    run_id: str | None = None,
    selection: str | None = None,
    matrix: Matrix | None = None,
    timing: Sequence[str] = (),
) -> str:
    """`timing`: the "Timing" section's lines (history/trends.py `timing_markdown`)."""
    matrix = matrix or build_matrix(outcomes)
    title = f"# klab test run {run_id}" if run_id else "# klab test run"
    lines = [title, ""]
    facts = []
    if selection:
        facts.append(f"selection `{selection}`")
    facts.append(f"exit status {stage_exit_status(outcomes)}")
    digests = sorted({(o.baseline_digest or "")[:12] for o in outcomes if o.verdicts})
    if digests:
        named = ", ".join(d or "none (raw results)" for d in digests)
        facts.append(f"baseline {named}")
    lines += [" · ".join(facts), ""]

    lines += [
        "| distro | status | golden | zfs | suite | passed | skipped | failed | killed "
        "| absent | expected | flaky | unexpected | time |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        c = o.counts
        expected = len(o.with_verdict(Verdict.EXPECTED))
        flaky = len(o.with_verdict(Verdict.FLAKY))
        lines.append(
            f"| {o.distro} | {o.status} | {_md(o.golden_build_id)} | {_md(o.zfs_version)} "
            f"| {_md(o.suite_version)} | {c.passed} | {c.skipped} | {c.failed} | {c.killed} "
            f"| {c.absent} | {expected} | {flaky} | {len(o.unexpected)} "
            f"| {format_duration(o.duration_s)} |"
        )
    lines.append("")

    lines += _section("Unexpected results and errors", outcomes, _problems)
    lines += _section(
        "Unexpected passes (stale baseline entries)", outcomes, _of(Verdict.UNEXPECTED_PASS)
    )
    lines += _section("Flaky (failed, then passed on a retry)", outcomes, _of(Verdict.FLAKY))
    lines += _section(
        "zts-report disagrees",
        outcomes,
        lambda o: [f"- {_md(line)}" for line in o.judgement.disagreements],
    )
    lines += _section("Baseline entries to review", outcomes, _baseline_notes)
    lines += _section("Expected (baseline)", outcomes, _of(Verdict.EXPECTED))
    lines += _section("Skipped (no baseline entry)", outcomes, _of(Verdict.SKIP))

    if timing:
        lines += [*timing, ""]

    if matrix.regressions:
        lines += ["## Where distros disagree", ""]
        lines += _matrix_table(matrix, matrix.regressions)
        lines.append("")

    if matrix.rows:
        lines += ["## Matrix", ""]
        lines += _matrix_table(matrix, matrix.rows)
        lines += ["", legend(matrix), ""]
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> Path:
    write_atomic(path, text.encode("utf-8"))
    return path
