"""The Markdown summary of a run, for release-candidate notes and CI job summaries.

It leads with what a reader must act on — per-distro status, then unexpected results, then
rows where distros disagree — and ends with the full matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagefactory.testrun.matrix import (
    REGRESSION,
    SYMBOLS,
    Matrix,
    MatrixRow,
    build_matrix,
    format_duration,
)
from imagefactory.testrun.outcome import DistroOutcome, stage_exit_status


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


def markdown_summary(
    outcomes: Sequence[DistroOutcome],
    *,
    run_id: str | None = None,
    selection: str | None = None,
    matrix: Matrix | None = None,
) -> str:
    matrix = matrix or build_matrix(outcomes)
    title = f"# klab test run {run_id}" if run_id else "# klab test run"
    lines = [title, ""]
    facts = []
    if selection:
        facts.append(f"selection `{selection}`")
    facts.append(f"exit status {stage_exit_status(outcomes)}")
    lines += [" · ".join(facts), ""]

    lines += [
        "| distro | status | golden | zfs | suite | passed | skipped | failed | killed "
        "| absent | time |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        c = o.counts
        lines.append(
            f"| {o.distro} | {o.status} | {_md(o.golden_build_id)} | {_md(o.zfs_version)} "
            f"| {_md(o.suite_version)} | {c.passed} | {c.skipped} | {c.failed} | {c.killed} "
            f"| {c.absent} | {format_duration(o.duration_s)} |"
        )
    lines.append("")

    problems = [o for o in outcomes if o.unexpected or o.message]
    if problems:
        lines += ["## Unexpected results and errors", ""]
        for o in problems:
            lines.append(f"### {o.distro}")
            lines.append("")
            if o.message:
                lines.append(f"- {o.status}: {_md(o.message)}")
            by_name = {t.name: t for t in o.tests}
            for name in o.unexpected:
                test = by_name.get(name)
                result = test.result if test else "?"
                symbol = SYMBOLS[test.category] if test else "?"
                lines.append(f"- {symbol} `{name}` {result}")
            lines.append("")

    if matrix.regressions:
        lines += ["## Where distros disagree", ""]
        lines += _matrix_table(matrix, matrix.regressions)
        lines.append("")

    if matrix.rows:
        lines += ["## Matrix", ""]
        lines += _matrix_table(matrix, matrix.rows)
        lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, text: str) -> Path:
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8")
    part.replace(path)
    return path
