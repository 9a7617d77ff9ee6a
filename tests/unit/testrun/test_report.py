"""The Markdown summary leads with status, unexpected results and disagreements."""

from __future__ import annotations

from pathlib import Path

from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.report import markdown_summary, write_markdown
from imagefactory.testrun.results import TestResult


def test_summary_lists_distros_unexpected_results_and_regressions(tmp_path: Path) -> None:
    debian = DistroOutcome.from_tests(
        "debian13",
        [TestResult("a/x", "PASS"), TestResult("a/y", "PASS")],
        zfs_version="2.3.9-1",
        duration_s=493,
    )
    ubuntu = DistroOutcome.from_tests(
        "ubuntu24", [TestResult("a/x", "PASS"), TestResult("a/y", "FAIL")], duration_s=500
    )
    rocky = DistroOutcome.failed_infrastructure("rocky9", "no golden | run make", not_built=True)

    text = markdown_summary(
        [debian, ubuntu, rocky], run_id="20260422T033417Z-abc", selection="suite=quick"
    )
    path = write_markdown(tmp_path / "summary.md", text)

    assert path.read_text() == text
    lines = text.splitlines()
    assert lines[0] == "# klab test run 20260422T033417Z-abc"
    assert "selection `suite=quick` · exit status 3 · baseline none (raw results)" in lines
    assert (
        "| debian13 | passed | — | 2.3.9-1 | — | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 8m13s |" in lines
    )
    assert "- ❌ `a/y` FAIL" in lines
    assert "- not-built: no golden \\| run make" in lines
    disagree = lines.index("## Where distros disagree")
    matrix = lines.index("## Matrix")
    assert "| `a/y` | ✅ | ❌ | · | &lt;-- regression |" in lines[disagree:matrix]
    assert "| `a/x` | ✅ | ✅ | · |  |" in lines[matrix:]
