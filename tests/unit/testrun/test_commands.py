"""`klab results parse` through the real CLI entry point (`klab history`: test_history_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.cli import main

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
