"""`klab results parse` and `klab history` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.history import History
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import TestResult

LOGS = Path(__file__).parent / "logs"


def test_parse_json_has_summary_tests_complete_unexpected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["results", "parse", str(LOGS / "zts-2.4-timestamps.log"), "--json"])

    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["summary"] == {"PASS": 5, "FAIL": 1, "SKIP": 1, "KILLED": 1, "RERAN": 1}
    assert data["complete"] is True
    assert {"name", "result", "duration_s", "reran"} <= data["tests"][3].keys()
    assert data["tests"][3]["reran"] is True
    assert [u["name"] for u in data["unexpected"]] == [
        "fault/auto_replace_001_pos",
        "removal/removal_with_add",
    ]


def test_parse_prints_a_table_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["results", "parse", str(LOGS / "zts-aborted.log")])

    out = capsys.readouterr().out
    assert status == 0
    assert "FAIL" in out and "cli_root/zpool_import/import_cachefile_device_removed" in out
    assert "INCOMPLETE: no Results Summary" in out


def test_parse_exits_1_when_nothing_ran(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["results", "parse", str(LOGS / "zts-zero-tests.log"), "--json"])

    captured = capsys.readouterr()
    assert status == 1
    assert json.loads(captured.out)["tests"] == []
    assert "no test results" in captured.err


def test_parse_of_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["results", "parse", str(tmp_path / "nope.log")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_parse_reads_standard_input() -> None:
    log = (LOGS / "zts-2.2-sanity.log").read_bytes()

    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "results", "parse", "-", "--json"],
        input=log,
        capture_output=True,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"] == {"PASS": 16, "FAIL": 2, "SKIP": 1}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    start = datetime(2026, 4, 22, 3, 0, tzinfo=UTC)
    with History.open(path) as history:
        for i, result in enumerate(["PASS", "FAIL"]):
            run = f"run{i}"
            history.start_run(
                run,
                selection="suite=quick",
                command="klab test all --suite quick",
                started=start + timedelta(hours=i),
            )
            tests = [TestResult("a/x", result, 3.0), TestResult("a/y", "PASS", 1.0)]
            history.record_outcome(
                run, DistroOutcome.from_tests("debian13", tests, zfs_version="2.3.9-1")
            )
    return path


def test_history_lists_runs(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["RUN", "STARTED", "SELECTION", "DISTRO"]
    assert lines[1].startswith("run1") and "failed" in lines[1]
    assert lines[2].startswith("run0") and "passed" in lines[2]


def test_history_of_one_test_as_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--test", "x", "--last", "1", "--json"]) == 0

    [row] = json.loads(capsys.readouterr().out)
    assert (row["run_id"], row["test"], row["result"]) == ("run1", "a/x", "FAIL")


def test_history_diff_last(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--diff-last"]) == 0

    out = capsys.readouterr().out
    assert "selection suite=quick: run0 -> run1" in out
    assert "debian13: passed -> failed" in out
    change = next(line for line in out.splitlines() if line.startswith("broke"))
    assert change.split() == ["broke", "debian13", "a/x", "PASS", "FAIL"]


def test_history_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 0
    assert "no test history yet" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()


def test_history_rejects_contradictory_flags(db: Path) -> None:
    assert main(["history", "--db", str(db), "--diff-last", "--test", "a/x"]) == 2
    assert main(["history", "--db", str(db), "--last", "0"]) == 2
