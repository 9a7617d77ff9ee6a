"""`klab results judge` through the real CLI entry point, on the repository's real consoles."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.baseline import ENV_BASELINE

LOGS = Path(__file__).parent / "logs"
DEBIAN_LOG = LOGS / "zts-2.3.9-debian13-quick-real.log"
RATIO = "rsend/send-c_verify_ratio"
HIERARCHY = "rsend/send_encrypted_hierarchy"
TCG = ["--distro", "debian13", "--zfs-version", "2.3.9-1", "--kernel", "6.12.48", "--accel"]


@pytest.fixture(autouse=True)
def _repository_baselines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BASELINE, raising=False)


def judge_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    status = main(["results", "judge", *argv, "--json"])
    captured = capsys.readouterr()
    return status, json.loads(captured.out), captured.err


def test_json_has_exactly_the_documented_keys_and_tcg_flakes_are_expected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, data, err = judge_json(capsys, str(DEBIAN_LOG), *TCG, "tcg")

    assert status == 0
    assert list(data) == [
        "verdicts",
        "unexpected_failures",
        "unexpected_passes",
        "expected",
        "skips",
        "summary_mismatch",
        "counts",
    ]
    assert data["verdicts"][RATIO] == "expected" and data["verdicts"][HIERARCHY] == "expected"
    assert data["verdicts"]["arc/setup"] == "pass"
    assert [e["name"] for e in data["expected"]] == [RATIO, HIERARCHY]
    assert data["expected"][0]["entry"] == "baselines/debian13-tcg.yaml:7"
    assert data["expected"][0]["reason"].startswith("hits test-runner's 10-minute limit")
    assert data["unexpected_failures"] == [] and data["skips"] == []
    assert data["counts"]["expected"] == 2 and data["counts"]["unexpected-failure"] == 0
    # The real console counts one PASS more than it shows: kept, not a failure.
    assert data["summary_mismatch"]["summary"] == {"PASS": 96}
    assert f"note: {RATIO}: zts-report: unexpected KILLED; klab: expected" in err


def test_under_kvm_they_are_unexpected_failures_and_the_exit_is_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, data, _ = judge_json(capsys, str(DEBIAN_LOG), *TCG, "kvm")

    assert status == 1
    assert [(f["name"], f["result"]) for f in data["unexpected_failures"]] == [
        (RATIO, "KILLED"),
        (HIERARCHY, "FAIL"),
    ]


def test_no_baseline_judges_raw_results(capsys: pytest.CaptureFixture[str]) -> None:
    status, data, _ = judge_json(capsys, str(LOGS / "zts-2.2-sanity.log"), "--no-baseline")

    assert status == 1
    assert data["verdicts"]["casenorm/mixed_formd_lookup"] == "unexpected-failure"
    assert data["verdicts"]["l2arc/l2arc_arcstats_pos"] == "skip"
    assert [s["name"] for s in data["skips"]] == ["l2arc/l2arc_arcstats_pos"]


def test_an_unexpected_pass_is_reported_and_changes_no_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "stale.yaml"
    baseline.write_text(
        "- {test: atime/atime_001_pos, result: FAIL, kind: known, reason: fixed upstream?}\n"
        "- {test: 'rsend/*', result: [FAIL, KILLED], kind: flaky, reason: slow}\n"
    )

    status, data, _ = judge_json(capsys, str(DEBIAN_LOG), "--baseline", str(baseline))

    assert status == 0
    assert [(p["name"], p["reason"]) for p in data["unexpected_passes"]] == [
        ("atime/atime_001_pos", "expected FAIL: fixed upstream?")
    ]


def test_the_human_report_names_verdicts_reasons_and_the_baseline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["results", "judge", str(DEBIAN_LOG), *TCG, "kvm"])

    out = capsys.readouterr().out
    assert status == 1
    assert "unexpected failures:" in out
    assert f"💀  KILLED            {RATIO}" in out
    assert "baseline: 400 entries in 4 file(s)" in out
    assert "judged: failed: 2 unexpected result(s)" in out


def test_a_log_with_no_result_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    status, data, err = judge_json(capsys, str(LOGS / "zts-zero-tests.log"))

    assert status == 1
    assert data["verdicts"] == {}
    assert "no test results" in err


def test_a_cut_short_log_is_never_green(capsys: pytest.CaptureFixture[str]) -> None:
    status, data, _ = judge_json(capsys, str(LOGS / "zts-aborted.log"), "--no-baseline")

    assert status == 1
    assert data["counts"]["unexpected-failure"] == 1


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "judge", str(DEBIAN_LOG), "--record"]) == 2
    assert "--record needs --distro" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("- test: a/b\n  result: MAYBE\n  kind: known\n  reason: r\n")
    assert main(["results", "judge", str(DEBIAN_LOG), "--baseline", str(bad)]) == 2
    assert f"{bad}:2: result[0]: Input should be 'FAIL', 'SKIP' or 'KILLED'" in (
        capsys.readouterr().err
    )
    assert main(["results", "judge", str(tmp_path / "nope.log")]) == 2
    with pytest.raises(SystemExit) as caught:  # argparse's own usage error
        main(["results", "judge", str(DEBIAN_LOG), "--accel", "hvf"])
    assert caught.value.code == 2


def test_record_stores_the_judged_log_as_a_run(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    env = {**os.environ, "IMAGEFACTORY_STATE": str(tmp_path / "state")}
    env.pop(ENV_BASELINE, None)
    argv = [sys.executable, "-m", "imagefactory", "results", "judge", str(DEBIAN_LOG)]
    argv += [*TCG, "tcg", "--record", "--history", str(db)]

    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)

    assert done.returncode == 0, done.stderr
    assert "recorded as run " in done.stderr
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT selection FROM runs").fetchall()
        statuses = conn.execute("SELECT distro, status FROM distro_results").fetchall()
        verdicts = dict(
            conn.execute(
                "SELECT test, verdict FROM test_results WHERE verdict != 'pass'"
            ).fetchall()
        )
    assert runs == [("log",)]
    assert statuses == [("debian13", "passed")]
    assert verdicts == {RATIO: "expected", HIERARCHY: "expected"}
