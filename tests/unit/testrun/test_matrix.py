"""The distro × test matrix: symbols, regression marks, groups, summary lines, rendering."""

from __future__ import annotations

import io
from pathlib import Path

from rich.cells import cell_len

from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.baseline import load_baseline
from imagefactory.testrun.matrix import (
    REGRESSION,
    build_matrix,
    documented_order,
    format_duration,
    format_plain,
    legend,
    print_matrix,
    summary_line,
)
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import ParsedRun, TestResult, summary_counts
from imagefactory.testrun.selection import parse_selection


def parsed_run(results: dict[str, str]) -> ParsedRun:
    tests = [TestResult(name, result, duration_s=1.0) for name, result in results.items()]
    return ParsedRun(tests=tests, summary=summary_counts(tests), complete=True)


def outcome(
    distro: str, results: dict[str, str], duration_s: float = 493.0, absent: tuple[str, ...] = ()
) -> DistroOutcome:
    tests = [TestResult(name, result, duration_s=1.0) for name, result in results.items()]
    parsed = ParsedRun(tests=tests, summary=summary_counts(tests), complete=True)
    return DistroOutcome.from_parsed(
        distro,
        parsed,
        absent=absent_results(absent, "2.2.2"),
        duration_s=duration_s,
        suite_version="2.2.2",
    )


def test_rows_where_distros_disagree_are_marked_as_regressions() -> None:
    debian = outcome("debian13", {"a/same": "PASS", "a/differs": "PASS", "a/killed": "KILLED"})
    ubuntu = outcome("ubuntu24", {"a/same": "PASS", "a/differs": "FAIL", "a/killed": "KILLED"})

    matrix = build_matrix([debian, ubuntu])

    rows = {row.label: row for row in matrix.rows}
    assert [c.mark for c in rows["a/differs"].cells] == ["pass", "fail"]
    assert rows["a/differs"].regression
    assert not rows["a/same"].regression
    assert not rows["a/killed"].regression
    assert [r.label for r in matrix.regressions] == ["a/differs"]
    text = format_plain(matrix)
    differs = next(line for line in text.splitlines() if line.startswith("a/differs"))
    assert "✅" in differs and "❌" in differs and differs.endswith(REGRESSION)
    killed = next(line for line in text.splitlines() if line.startswith("a/killed"))
    assert killed.count("💀") == 2 and REGRESSION not in killed


def test_absent_and_not_run_cells_are_not_disagreements() -> None:
    fedora = outcome("fedora44", {"raidz/raidz_expand_001_pos": "PASS", "a/x": "SKIP"})
    ubuntu = outcome("ubuntu24", {"a/x": "SKIP"}, absent=("raidz/raidz_expand_001_pos",))
    rocky = outcome("rocky9", {})

    matrix = build_matrix([fedora, ubuntu, rocky])

    assert matrix.distros == ("rocky9", "fedora44", "ubuntu24")  # the documented order
    row = next(r for r in matrix.rows if r.label == "raidz/raidz_expand_001_pos")
    assert [c.text(False) for c in row.cells] == ["·", "✅", "∅"]
    assert not row.regression
    assert "⏭" in format_plain(matrix)


def test_large_suites_are_shown_by_group() -> None:
    many = {f"cli_root/zfs_{i // 50}/t{i:03d}": "PASS" for i in range(150)}
    other = dict(many)
    other["cli_root/zfs_1/t060"] = "FAIL"
    other["cli_root/zfs_2/t100"] = "SKIP"

    matrix = build_matrix([outcome("debian13", many), outcome("centos9", other)])

    assert matrix.grouped
    assert [r.label for r in matrix.rows] == ["cli_root/zfs_0", "cli_root/zfs_1", "cli_root/zfs_2"]
    group1 = matrix.rows[1]
    assert [c.text(True) for c in group1.cells] == ["❌ 1/50", "✅"]  # centos9, debian13
    assert group1.regression
    # One skip among passes does not change the group's verdict.
    assert not matrix.rows[2].regression
    assert format_plain(matrix).splitlines()[0].startswith("group")


def test_summary_lines_count_and_time_each_distro() -> None:
    ok = outcome("debian13", {**{f"a/p{i}": "PASS" for i in range(47)}, "a/s1": "SKIP"})
    assert summary_line(ok) == "debian13: 47 passed, 1 skipped, 0 failed (8m13s)"

    bad = outcome("ubuntu24", {"a/p": "PASS", "a/f": "FAIL", "a/k": "KILLED"}, absent=("a/n",))
    assert summary_line(bad) == (
        "ubuntu24: 1 passed, 0 skipped, 1 failed, 1 killed, 1 absent (8m13s) — 2 unexpected"
    )
    down = DistroOutcome.failed_infrastructure("rocky9", "no golden", not_built=True)
    assert summary_line(down) == "rocky9: not built: no golden"


def test_durations_read_like_a_clock() -> None:
    assert format_duration(42) == "42s"
    assert format_duration(493) == "8m13s"
    assert format_duration(2 * 3600 + 65) == "2h01m05s"
    assert format_duration(None) == "?"


def test_plain_columns_line_up_in_terminal_cells() -> None:
    matrix = build_matrix(
        [outcome("debian13", {"a/x": "PASS", "a/y": "SKIP"}), outcome("ubuntu24", {"a/x": "FAIL"})]
    )

    lines = format_plain(matrix).splitlines()
    header = lines[0]
    column = cell_len(header[: header.index("ubuntu24")])
    assert cell_len(lines[1][: lines[1].index("❌")]) == column
    assert cell_len(lines[2][: lines[2].index("·")]) == column
    assert lines[-2].startswith("ubuntu24: 0 passed, 0 skipped, 1 failed")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_rich_table_and_a_pipe_plain_text() -> None:
    matrix = build_matrix(
        [outcome("debian13", {"a/x": "PASS"}), outcome("ubuntu24", {"a/x": "FAIL"})]
    )

    pipe = io.StringIO()
    print_matrix(matrix, file=pipe)
    assert pipe.getvalue() == format_plain(matrix)

    terminal = _Terminal()
    print_matrix(matrix, file=terminal)
    out = terminal.getvalue()
    assert "\x1b[" in out  # styled
    assert REGRESSION in out and "debian13: 1 passed" in out


def test_cells_carry_verdicts_and_an_expected_failure_is_no_regression(tmp_path: Path) -> None:
    baseline = tmp_path / "b.yaml"
    baseline.write_text(
        "- {test: a/known, result: FAIL, kind: known, reason: r, distros: [debian13]}\n"
        "- {test: a/stale, result: FAIL, kind: known, reason: r}\n"
    )
    loaded = load_baseline([baseline])
    results = {"a/known": "FAIL", "a/stale": "PASS"}
    debian = DistroOutcome.from_parsed("debian13", parsed_run(results), baseline=loaded)
    ubuntu = DistroOutcome.from_parsed(
        "ubuntu24", parsed_run({**results, "a/known": "PASS"}), baseline=loaded
    )
    fedora = DistroOutcome.from_parsed("fedora44", parsed_run(results), baseline=loaded)

    matrix = build_matrix([debian, ubuntu, fedora])

    rows = {row.label: row for row in matrix.rows}
    assert matrix.distros == ("fedora44", "debian13", "ubuntu24")
    assert [c.text(False) for c in rows["a/known"].cells] == ["❌", "🟡", "✅"]
    assert [c.text(False) for c in rows["a/stale"].cells] == ["🟢", "🟢", "🟢"]
    # Fails unexpectedly on fedora44, clean on the others: a regression; 🟡 alone would not be.
    assert rows["a/known"].regression and not rows["a/stale"].regression
    assert legend(matrix) == (
        "✅ pass  🟡 expected (baseline)  🟢 unexpected pass (stale entry)  ❌ unexpected FAIL"
    )
    assert summary_line(debian).endswith("— 1 expected, 1 unexpected pass")
    assert summary_line(fedora).endswith("— 1 unexpected, 1 unexpected pass")


def quick(
    distro: str, passed: int, skipped: int, duration_s: float, failed: int = 0
) -> DistroOutcome:
    results = {f"a/p{i:02d}": "PASS" for i in range(passed)}
    results.update({f"a/s{i}": "SKIP" for i in range(skipped)})
    results.update({f"a/f{i}": "FAIL" for i in range(failed)})
    return outcome(distro, results, duration_s=duration_s)


def test_the_summary_block_is_the_documented_one() -> None:
    # Given in the order the runs finished; shown in the documentation's order.
    outcomes = [
        quick("fedora44", 47, 3, 493),
        quick("debian13", 47, 3, 542),
        quick("ubuntu24", 46, 3, 500, failed=1),
        quick("centos9", 47, 3, 611),
        quick("rocky9", 47, 3, 605),
    ]
    matrix = build_matrix(outcomes, selection=parse_selection(suite="quick"), wall_s=761)

    text = format_plain(matrix)

    assert text.splitlines()[0].split() == [
        "group" if matrix.grouped else "test",
        "centos9",
        "rocky9",
        "fedora44",
        "debian13",
        "ubuntu24",
    ]
    block = text[text.index("=== Summary ===") :].splitlines()
    assert block == [
        "=== Summary ===",
        "           centos9  rocky9  fedora44  debian13  ubuntu24",
        "quick.run  47/50    47/50   47/50     47/50     46/50",
        "centos9: 47 passed, 3 skipped, 0 failed (10m11s)",
        "rocky9: 47 passed, 3 skipped, 0 failed (10m05s)",
        "fedora44: 47 passed, 3 skipped, 0 failed (8m13s)",
        "debian13: 47 passed, 3 skipped, 0 failed (9m02s)",
        "ubuntu24: 46 passed, 3 skipped, 1 failed (8m20s) — 1 unexpected",
        "total wall: 12m41s",
    ]
    assert text.endswith("total wall: 12m41s\n")


def test_the_runfile_row_counts_absent_and_failed_tests_and_marks_distros_that_never_ran() -> None:
    ran = outcome("debian13", {"a/x": "PASS", "a/y": "FAIL", "a/z": "KILLED"}, absent=("a/n",))
    down = DistroOutcome.failed_infrastructure("rocky9", "no golden", not_built=True)
    matrix = build_matrix([ran, down], selection=parse_selection(suite="linux-fault"))

    assert (matrix.runfile, matrix.distros, matrix.tally) == (
        "linux-fault.run",
        ("rocky9", "debian13"),
        ("·", "1/4"),
    )
    # An unknown wall time is shown as unknown, never as a number.
    assert format_plain(matrix).endswith("total wall: ?\n")


def test_other_selections_label_the_row_with_the_selection() -> None:
    group = parse_selection(group=["encryption_001_pos,encryption_002_pos"])
    matrix = build_matrix([outcome("debian13", {"a/x": "PASS"})], selection=group)
    assert matrix.runfile == group.canonical
    assert build_matrix([outcome("debian13", {"a/x": "PASS"})]).runfile == "total"


def test_unknown_distros_follow_the_documented_ones() -> None:
    names = ["zorin17", "ubuntu24", "arch", "centos10", "debian13", "fedora44", "rocky9"]
    ordered = documented_order([outcome(n, {"a/x": "PASS"}) for n in names])
    assert [o.distro for o in ordered] == [
        "centos10",
        "rocky9",
        "fedora44",
        "debian13",
        "ubuntu24",
        "arch",
        "zorin17",
    ]
