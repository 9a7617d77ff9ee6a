"""`klab results rejudge RUN`: a stored run judged again against today's baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.baseline import load_baseline
from imagefactory.testrun.history import connect, migrate
from tests.unit.testrun.history_builder import HistoryBuilder, t

THEN = """\
- test: zpool/known
  result: FAIL
  kind: known
  reason: https://example/issues/1
"""
# Today: zpool/known was fixed upstream (entry retired), a/new-flake got a flaky entry,
# and an entry scoped to this run's kernel covers a/kernel-bug; one for KVM does not apply.
TODAY = """\
- test: a/new-flake
  result: FAIL
  kind: flaky
  reason: F:3/16 on debian13
- test: a/kernel-bug
  result: KILLED
  kind: known
  reason: https://example/issues/2
  kernel: "^6\\\\.12\\\\."
- test: a/kvm-only
  result: FAIL
  kind: known
  reason: only under KVM
  accel: kvm
"""


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    then, today = tmp_path / "then.yaml", tmp_path / "today.yaml"
    then.write_text(THEN)
    today.write_text(TODAY)
    path = tmp_path / "history.sqlite"
    with HistoryBuilder.create(path, baseline=load_baseline([then])) as b:
        b.run(
            "20260422T030000Z-aaaaaa",
            {
                "debian13": [
                    t("zpool/known", "FAIL"),
                    t("a/new-flake", "FAIL"),
                    t("a/kernel-bug", "KILLED"),
                    t("a/kvm-only", "FAIL"),
                    t("a/retried", "FAIL", "PASS"),
                    t("a/fine"),
                ]
            },
        )
    return path, then, today


def rejudge(path: Path, *argv: str) -> list[str]:
    return ["results", "rejudge", "--history", str(path), *argv]


def test_rejudge_prints_the_verdicts_that_moved(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, today = setup

    status = main(rejudge(path, "20260422T03", "--baseline", str(today)))

    out = capsys.readouterr().out
    assert status == 1  # zpool/known and a/kvm-only fail unexpectedly, judged today
    lines = out.splitlines()
    assert lines[0].startswith("run 20260422T030000Z-aaaaaa (suite=quick) judged again against")
    assert lines[1].startswith("  debian13: recorded with baseline ")
    rows = {line.split()[1]: line.split() for line in lines if line.startswith("debian13")}
    assert set(rows) == {"zpool/known", "a/new-flake", "a/kernel-bug"}
    assert rows["zpool/known"][2:5] == ["FAIL", "expected", "unexpected-failure"]
    assert rows["a/new-flake"][2:5] == ["FAIL", "unexpected-failure", "expected"]
    assert rows["a/new-flake"][5:] == ["F:3/16", "on", "debian13"]
    assert rows["a/kernel-bug"][2:5] == ["KILLED", "unexpected-failure", "expected"]
    assert lines[-1] == "judged today: 2 unexpected failure(s)"


def test_rejudge_json(setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, then, today = setup

    status = main(
        rejudge(path, "last", "--baseline", str(then), "--baseline", str(today), "--json")
    )

    data = json.loads(capsys.readouterr().out)
    assert status == 1  # a/kvm-only: its entry is for KVM, the run was TCG
    assert data["run"] == "20260422T030000Z-aaaaaa"
    assert data["baseline"]["digest"] != data["recorded_baseline_digests"]["debian13"]
    assert [(c["name"], c["before"], c["verdict"]) for c in data["changes"]] == [
        ("a/new-flake", "unexpected-failure", "expected"),
        ("a/kernel-bug", "unexpected-failure", "expected"),
    ]
    assert [f["name"] for f in data["unexpected_failures"]] == ["a/kvm-only"]


def test_nothing_changes_against_the_same_baseline(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, then, _ = setup

    status = main(rejudge(path, "last", "--baseline", str(then)))

    out = capsys.readouterr().out
    assert "no verdict changed" in out
    assert status == 1 and out.splitlines()[-1] == "judged today: 3 unexpected failure(s)"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nosuch", "--no-baseline"], "no run nosuch in the test history"),
        (["last~1", "--no-baseline"], "last~1: the test history"),
        (["last", "--no-baseline", "--distro", "fedora44"], "did not run on fedora44"),
        (["last", "--baseline", "/nonexistent.yaml"], "no such baseline file"),
    ],
)
def test_usage_errors_exit_2(
    setup: tuple[Path, Path, Path],
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(rejudge(setup[0], *argv)) == 2
    assert message in capsys.readouterr().err


def test_a_run_recorded_before_verdicts_keeps_its_flaky_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.sqlite"
    conn = connect(path)
    migrate(conn, target=2)
    conn.execute("INSERT INTO runs VALUES (1, 'v2', '2026-01-01T00:00:00+00:00', NULL, 's', 'c')")
    conn.execute(
        "INSERT INTO distro_results (id, run, distro, status) VALUES (1, 1, 'x', 'passed')"
    )
    conn.execute(
        "INSERT INTO test_results (distro_result, test, result, reran) VALUES (1, 'a/r', 'PASS', 1)"
    )
    conn.close()

    assert main(rejudge(path, "v2", "--no-baseline")) == 0
    assert "no verdict changed" in capsys.readouterr().out
