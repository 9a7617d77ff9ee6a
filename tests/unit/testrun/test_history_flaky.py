"""Flake rates per test and distro: `History.flaky` and `klab history --flaky`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.history import History, severity
from tests.unit.testrun.history_builder import HistoryBuilder, debian_run, t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    with HistoryBuilder.create(path) as b:
        for i in range(20):
            runs = {"debian13": debian_run(i)}
            if i >= 18:  # ubuntu joined late: two runs, one failure of the same test
                runs["ubuntu24"] = [t("rsend/timing", "FAIL" if i == 18 else "PASS")]
            b.run(f"run{i:02d}", runs)
    return path


def test_rates_count_every_run_a_test_failed_in_flaky_included(db: Path) -> None:
    with History.open(db, readonly=True) as history:
        stats, window = history.flaky(last=100)

    assert window == 20
    found = {(s.distro, s.test): s for s in stats}
    assert set(found) == {
        ("debian13", "cli_root/broken"),
        ("debian13", "rsend/timing"),
        ("debian13", "rsend/retry"),
        ("debian13", "trim/sometimes_skipped"),
        ("ubuntu24", "rsend/timing"),
    }
    retry = found["debian13", "rsend/retry"]
    assert (retry.runs, retry.failures, retry.results) == (20, 1, ("FAIL",))
    assert (retry.rate, retry.severity, retry.last_failed_run) == (0.05, "medium", "run07")
    timing = found["debian13", "rsend/timing"]
    assert (timing.failures, timing.runs, timing.reason_rate) == (3, 20, "F:3/20")
    assert (timing.severity, timing.results, timing.last_failed_run) == (
        "high",
        ("KILLED",),
        "run15",
    )
    # Skipped runs tested nothing: 10 runs, 1 failure.
    skipped = found["debian13", "trim/sometimes_skipped"]
    assert (skipped.runs, skipped.failures) == (10, 1)
    assert found["debian13", "cli_root/broken"].always
    assert (found["ubuntu24", "rsend/timing"].runs, found["ubuntu24", "rsend/timing"].failures) == (
        2,
        1,
    )
    # Worst first: the always-failing test, then by rate.
    assert stats[0].test == "cli_root/broken"
    assert [s.rate for s in stats] == sorted((s.rate for s in stats), reverse=True)


def test_the_window_and_the_distro_narrow_the_rates(db: Path) -> None:
    with History.open(db, readonly=True) as history:
        recent, window = history.flaky(last=5)
        ubuntu, ubuntu_window = history.flaky(last=100, distro="ubuntu24")

    assert window == 5
    assert {s.test for s in recent} == {"cli_root/broken", "rsend/timing"}  # runs 15-19
    assert next(s for s in recent if s.test == "rsend/timing" and s.distro == "debian13").runs == 5
    assert ubuntu_window == 2
    assert [(s.distro, s.test, s.failures, s.runs) for s in ubuntu] == [
        ("ubuntu24", "rsend/timing", 1, 2)
    ]


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(0.0, "low"), (0.01, "low"), (0.0101, "medium"), (0.05, "medium"), (0.0501, "high")],
)
def test_severity_follows_the_buildbot_thresholds(rate: float, expected: str) -> None:
    assert severity(rate) == expected


def test_flaky_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--flaky", "--distro", "debian13"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flake rates over the last 20 run(s) of 100 asked"
    assert lines[1].split() == [
        "DISTRO",
        "TEST",
        "RUNS",
        "FAILED",
        "RATE",
        "SEVERITY",
        "RESULTS",
        "LAST",
        "FAILED",
    ]
    rows = {line.split()[1]: line.split() for line in lines[2:]}
    assert rows["rsend/timing"][:7] == [
        "debian13",
        "rsend/timing",
        "20",
        "3",
        "15.0%",
        "high",
        "KILLED",
    ]
    assert rows["rsend/timing"][7] == "run15"
    assert rows["cli_root/broken"][5:7] == ["high", "(always)"]


def test_flaky_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--flaky", "--last", "20", "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert data["runs"] == 20
    retry = next(s for s in data["tests"] if s["test"] == "rsend/retry")
    assert retry == {
        "distro": "debian13",
        "test": "rsend/retry",
        "runs": 20,
        "failures": 1,
        "rate": 0.05,
        "severity": "medium",
        "results": ["FAIL"],
        "last_failed_run": "run07",
        "last_failed": "2026-04-22T10:00:00+00:00",
    }


def test_a_history_without_failures_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.sqlite"
    with HistoryBuilder.create(path) as b:
        b.run("r1", {"debian13": [t("a/ok")]})

    assert main(["history", "--db", str(path), "--flaky"]) == 0
    assert "no test failed in these runs" in capsys.readouterr().out
