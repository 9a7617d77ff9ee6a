"""The Markdown summary leads with status, unexpected results and disagreements."""

from __future__ import annotations

import json
from pathlib import Path

from imagefactory.testrun.baseline import baselines_dir, load_baseline
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.report import markdown_summary, write_markdown
from imagefactory.testrun.results import TestResult, parse_file
from imagefactory.testrun.run_files import write_run_files
from imagefactory.testrun.selection import parse_selection
from imagefactory.testrun.verdict import RunContext


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
    # The matrix's columns in the documentation's order: rocky9, debian13, ubuntu24.
    assert "| `a/y` | · | ✅ | ❌ | &lt;-- regression |" in lines[disagree:matrix]
    assert "| `a/x` | · | ✅ | ✅ |  |" in lines[matrix:]


LOGS = Path(__file__).parent / "logs"


def test_the_summary_says_why_and_run_json_names_the_baseline(tmp_path: Path) -> None:
    baseline = load_baseline([baselines_dir()])
    tcg = RunContext(distro="debian13", zfs_version="2.3.9", kernel="6.12.48", accel="tcg")
    debian = DistroOutcome.from_parsed(
        "debian13",
        parse_file(LOGS / "zts-2.3.9-debian13-quick-real.log"),
        baseline=baseline,
        context=tcg,
    )
    ubuntu = DistroOutcome.from_parsed(
        "ubuntu24", parse_file(LOGS / "zts-2.2-sanity.log"), baseline=baseline
    )
    fedora = DistroOutcome.from_parsed(
        "fedora44", parse_file(LOGS / "zts-rerun-maybes.log"), baseline=baseline
    )
    outcomes = [debian, ubuntu, fedora]

    files = write_run_files(
        tmp_path, "r1", parse_selection(suite="quick"), outcomes, baseline=baseline
    )

    text = files["summary"].read_text()
    digest = baseline.digest
    assert digest is not None
    assert f"selection `suite=quick` · exit status 1 · baseline {digest[:12]}" in text
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == [
        "## Unexpected results and errors",
        "## Flaky (failed, then passed on a retry)",
        "## zts-report disagrees",
        "## Baseline entries to review",
        "## Expected (baseline)",
        "## Skipped (no baseline entry)",
        "## Where distros disagree",
        "## Matrix",
    ]
    assert "- Results Summary counts PASS 96; the result lines show PASS 95" in text
    assert (
        "- 🟡 `rsend/send-c_verify_ratio` KILLED — hits test-runner's 10-minute limit under "
        "TCG on a loaded host (10:01 in the 2.3.9 quick run) [baselines/debian13-tcg.yaml:7]"
    ) in text
    assert "- 🔁 `l2arc/l2arc_l2miss_pos` PASS (attempts: FAIL, PASS)" in text
    assert "- ⏭ `l2arc/l2arc_arcstats_pos` SKIP" in text
    # ubuntu24 gave no zfs version: the upstream lists, scoped by version, could not apply.
    assert "casenorm/mixed_formd_lookup: not applied: this run's zfs is unknown" in text
    assert "| ubuntu24 | failed |" in text

    run = json.loads(files["run"].read_text())
    assert run["baseline"] == {
        "digest": digest,
        "files": list(baseline.files),
        "entries": len(baseline.entries),
    }
    first = run["distros"][0]
    assert first["verdicts"]["expected"] == 2 and first["context"]["accel"] == "tcg"
    per_test = {t["name"]: t for t in first["tests"]}
    assert per_test["rsend/send-c_verify_ratio"]["verdict"] == "expected"
    assert per_test["rsend/send-c_verify_ratio"]["entry"] == "baselines/debian13-tcg.yaml:7"
    assert sum(t["verdict"] == "expected" for t in first["tests"]) == 2
    junit = files["junit"].read_text()
    assert "<flakyFailure" in junit
