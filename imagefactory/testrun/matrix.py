"""The distro × test matrix: where a failure happens, and where distros disagree.

"A test failed" becomes "it fails only on Ubuntu's 2.2.2" when results are laid side by side:
rows are tests (or their groups, for large suites), columns distros in the lab
documentation's order (centos rocky fedora debian ubuntu), each cell the test's verdict (a
known failure is 🟡, not ❌), and a row where the test fails unexpectedly on one distro but
runs clean on another ends with `<-- regression`.  A test absent from a distro's suite
version (∅) or a distro with no result for it is not a disagreement: nothing was measured
there.  Below it, as documented, a `=== Summary ===` block: the runfile row (`quick.run
47/50 ...`: passed of the tests the selection holds), each distro's summary line, and the
run's `total wall:` time.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from imagefactory.spec.names import documented_rank
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.results import KILLED, TestResult
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.tables import format_duration as format_duration  # re-export
from imagefactory.testrun.verdict import TestVerdict, Verdict

SYMBOLS: dict[str, str] = {
    "pass": "✅",
    "expected": "🟡",
    "flaky": "🔁",
    "unexpected-pass": "🟢",
    "skip": "⏭",
    "absent": "∅",
    "fail": "❌",
    "killed": "💀",
    "crashed": "💥",
}
"""A cell's mark: the verdict, with unexpected failures split by result word (FAIL, KILLED)."""
MEANINGS: dict[str, str] = {
    "pass": "pass",
    "expected": "expected (baseline)",
    "flaky": "flaky (passed on retry)",
    "unexpected-pass": "unexpected pass (stale entry)",
    "skip": "skip",
    "absent": "absent in this version",
    "fail": "unexpected FAIL",
    "killed": "unexpected KILLED",
    "crashed": "crashed",
}
NOT_RUN = "·"
REGRESSION = "<-- regression"
GROUP_THRESHOLD = 100
"""More test rows than this and the matrix shows groups (directories) instead."""
SUMMARY_HEADING = "=== Summary ==="

_GROUP_ORDER: tuple[str, ...] = (
    "crashed", "killed", "fail", "unexpected-pass", "flaky", "expected", "skip", "pass", "absent"
)  # fmt: skip


def mark(verdict: TestVerdict) -> str:
    """The SYMBOLS key of a verdict."""
    if verdict.verdict is Verdict.UNEXPECTED_FAILURE:
        return "killed" if verdict.result == KILLED else "fail"
    return verdict.verdict.value


@dataclass(frozen=True, slots=True)
class Cell:
    mark: str | None
    failures: int = 0
    """Tests with a failing verdict (unexpected failure, crash) in the cell."""
    total: int = 0
    """Tests that ran in the cell (absent ones did not)."""

    def text(self, grouped: bool) -> str:
        if self.mark is None:
            return NOT_RUN
        symbol = SYMBOLS[self.mark]
        if grouped and self.failures:
            return f"{symbol} {self.failures}/{self.total}"
        return symbol


@dataclass(frozen=True, slots=True)
class MatrixRow:
    label: str
    cells: tuple[Cell, ...]

    @property
    def regression(self) -> bool:
        """Fails unexpectedly somewhere and runs clean elsewhere."""
        failing = any(c.failures for c in self.cells)
        clean = any(c.total and not c.failures for c in self.cells)
        return failing and clean


@dataclass(frozen=True, slots=True)
class Matrix:
    distros: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    grouped: bool
    summaries: tuple[str, ...]
    runfile: str = "total"
    """The summary row's label: `quick.run` for `--suite quick`, else the selection."""
    tally: tuple[str, ...] = ()
    """The summary row's cells: `47/50` (passed / tests), `·` where nothing ran."""
    wall_s: float | None = None
    """The whole run's wall-clock time; None when unknown (a merged run)."""

    @property
    def regressions(self) -> list[MatrixRow]:
        return [row for row in self.rows if row.regression]


def legend(matrix: Matrix) -> str:
    """What the marks in this matrix mean (only those it shows)."""
    shown = {c.mark for row in matrix.rows for c in row.cells if c.mark is not None}
    return "  ".join(f"{SYMBOLS[m]} {MEANINGS[m]}" for m in SYMBOLS if m in shown)


def summary_line(outcome: DistroOutcome) -> str:
    """`debian13: 47 passed, 3 skipped, 0 failed (8m13s)`, plus what went wrong, if anything."""
    name = outcome.distro
    if outcome.status is DistroStatus.NOT_BUILT:
        return f"{name}: not built: {outcome.message or 'no ztest golden'}"
    if outcome.status is DistroStatus.INFRA_ERROR:
        return f"{name}: infrastructure error: {outcome.message or 'unknown'}"
    c = outcome.counts
    parts = [f"{c.passed} passed", f"{c.skipped} skipped", f"{c.failed} failed"]
    if c.killed:
        parts.append(f"{c.killed} killed")
    if c.absent:
        parts.append(f"{c.absent} absent")
    line = f"{name}: {', '.join(parts)} ({format_duration(outcome.duration_s)})"
    notes = []
    if outcome.status is DistroStatus.FAILED:
        notes.append(f"{len(outcome.unexpected)} unexpected")
        if outcome.judgement.unseen_failures:
            notes.append(f"{outcome.judgement.unseen_failures} FAIL/KILLED with no result line")
    elif outcome.status is DistroStatus.INCOMPLETE:
        notes.append(f"incomplete: {outcome.message}")
    elif outcome.status is DistroStatus.NO_RESULTS:
        notes.append(f"no results: {outcome.message}")
    for verdict, word in (
        (Verdict.EXPECTED, "expected"),
        (Verdict.FLAKY, "flaky"),
        (Verdict.UNEXPECTED_PASS, "unexpected pass"),
    ):
        found = len(outcome.with_verdict(verdict))
        if found:
            notes.append(f"{found} {word}")
    if outcome.status is DistroStatus.PASSED and (c.failed or c.killed) and not notes:
        notes.append("all as expected")
    return line + (f" — {', '.join(notes)}" if notes else "")


def documented_order(outcomes: Sequence[DistroOutcome]) -> list[DistroOutcome]:
    """Outcomes by the documentation's distro order; names it does not know go last."""

    return sorted(outcomes, key=lambda outcome: documented_rank(outcome.distro))


def runfile_label(selection: Selection | None) -> str:
    """`quick.run` for `--suite quick` (as the documentation's summary row), the selection's
    canonical text otherwise (`group=encryption`), `total` when unknown."""
    if selection is None:
        return "total"
    if selection.kind == "suite" and selection.shard is None:
        return f"{selection.items[0]}.run"
    return selection.canonical


def tally(outcome: DistroOutcome) -> str:
    """`47/50`: tests passed of those the selection holds for the distro (absent included:
    they were asked for); `·` when no test result came back at all."""
    c = outcome.counts
    total = c.passed + c.skipped + c.failed + c.killed + c.absent
    return f"{c.passed}/{total}" if total else NOT_RUN


def _cell(outcome: DistroOutcome, tests: Sequence[TestResult]) -> Cell:
    """One test's cell, or a group's: its worst mark, failing tests / tests that ran."""
    verdicts = [outcome.verdict_of(t) for t in tests]
    marks = {mark(v) for v in verdicts}
    worst = next(m for m in _GROUP_ORDER if m in marks)
    ran = [v for v in verdicts if v.verdict is not Verdict.ABSENT]
    return Cell(worst, sum(1 for v in ran if v.failing), len(ran))


def build_matrix(
    outcomes: Sequence[DistroOutcome],
    *,
    selection: Selection | None = None,
    wall_s: float | None = None,
    grouped: bool | None = None,
    threshold: int = GROUP_THRESHOLD,
) -> Matrix:
    """Lay the outcomes side by side in the documented order; `grouped=None` groups when
    rows exceed `threshold`.  `selection` names the summary row, `wall_s` is the run's."""
    outcomes = documented_order(outcomes)
    distros = tuple(o.distro for o in outcomes)
    keys = sorted({t.key for o in outcomes for t in o.tests})
    if grouped is None:
        grouped = len(keys) > threshold
    rows: list[MatrixRow] = []
    if grouped:
        per_distro: list[dict[str, list[TestResult]]] = []
        for o in outcomes:
            groups: dict[str, list[TestResult]] = {}
            for t in o.tests:
                groups.setdefault(t.group, []).append(t)
            per_distro.append(groups)
        for label in sorted({g for groups in per_distro for g in groups}):
            cells = tuple(
                _cell(o, groups[label]) if label in groups else Cell(None)
                for o, groups in zip(outcomes, per_distro, strict=True)
            )
            rows.append(MatrixRow(label, cells))
    else:
        lookup = [{t.key: t for t in o.tests} for o in outcomes]
        for key in keys:
            cells = tuple(
                _cell(o, [tests[key]]) if key in tests else Cell(None)
                for o, tests in zip(outcomes, lookup, strict=True)
            )
            rows.append(MatrixRow(key, cells))
    return Matrix(
        distros,
        tuple(rows),
        grouped,
        tuple(summary_line(o) for o in outcomes),
        runfile=runfile_label(selection),
        tally=tuple(tally(o) for o in outcomes),
        wall_s=wall_s,
    )


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_len(text))


def format_plain(matrix: Matrix) -> str:
    """Aligned plain text (emoji measured in terminal cells), for logs and pipes."""
    header = ["group" if matrix.grouped else "test", *matrix.distros]
    body = [[row.label, *(c.text(matrix.grouped) for c in row.cells)] for row in matrix.rows]
    widths = [max(cell_len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for cells, row in [(header, None), *zip(body, matrix.rows, strict=True)]:
        text = "  ".join(_pad(cell, widths[i]) for i, cell in enumerate(cells))
        if row is not None and row.regression:
            text += "  " + REGRESSION
        lines.append(text.rstrip())
    if matrix.rows:
        lines.append(legend(matrix))
    lines.append("")
    lines.extend(summary_block(matrix))
    return "\n".join(lines) + "\n"


def summary_block(matrix: Matrix) -> list[str]:
    """`=== Summary ===`, the distros over the runfile row, each distro's line, the wall."""
    table = [["", *matrix.distros], [matrix.runfile, *matrix.tally]]
    widths = [max(cell_len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = [SUMMARY_HEADING]
    lines += ["  ".join(_pad(c, widths[i]) for i, c in enumerate(r)).rstrip() for r in table]
    lines += matrix.summaries
    lines.append(f"total wall: {format_duration(matrix.wall_s)}")
    return lines


def rich_table(matrix: Matrix) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("group" if matrix.grouped else "test", overflow="fold")
    for distro in matrix.distros:
        table.add_column(distro, justify="center", no_wrap=True)
    table.add_column("", no_wrap=True)
    for row in matrix.rows:
        mark = Text(REGRESSION if row.regression else "", style="bold red")
        cells = (Text(c.text(matrix.grouped)) for c in row.cells)
        table.add_row(Text(row.label), *cells, mark)
    return table


def print_matrix(matrix: Matrix, file: TextIO | None = None) -> None:
    """Rich table on a terminal, plain text otherwise (CI logs, files, pipes)."""
    stream = file if file is not None else sys.stdout
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        stream.write(format_plain(matrix))
        return
    console.print(rich_table(matrix))
    if matrix.rows:
        console.print(legend(matrix), markup=False)
    console.print()
    for line in summary_block(matrix):
        console.print(line, markup=False)
