"""`klab history` through the real CLI entry point, on real history files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from tests.unit.testrun.history_builder import HistoryBuilder, t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    with HistoryBuilder.create(path) as b:
        b.run("run0", {"debian13": [t("a/x", "PASS", s=3), t("a/y", s=1)]})
        b.run("run1", {"debian13": [t("a/x", "FAIL", s=3), t("a/y", "KILLED", "PASS", s=1)]})
    return path


def test_history_lists_runs(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["RUN", "STARTED", "SELECTION", "DISTRO"]
    assert lines[1].startswith("run1") and "failed" in lines[1]
    assert lines[2].startswith("run0") and "passed" in lines[2]


def test_runs_as_json_carry_the_run_context(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--json", "--last", "1"]) == 0

    [row] = json.loads(capsys.readouterr().out)
    assert (row["run_id"], row["kernel"], row["accel"], row["lineage"]) == (
        "run1",
        "6.12.48-amd64",
        "tcg",
        "ztest",
    )


def test_one_test_shows_its_verdict_and_attempts(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(db), "--test", "y"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert "VERDICT" in lines[0]
    assert "PASS (KILLED → PASS)" in lines[1] and "flaky" in lines[1]
    assert "pass" in lines[2].split()


def test_history_of_one_test_as_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--test", "y", "--last", "1", "--json"]) == 0

    [row] = json.loads(capsys.readouterr().out)
    assert (row["run_id"], row["test"], row["result"]) == ("run1", "a/y", "PASS")
    assert (row["verdict"], row["attempts"]) == ("flaky", ["KILLED", "PASS"])


def test_history_diff_last(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--diff-last"]) == 0

    out = capsys.readouterr().out
    assert "selection suite=quick: run0 -> run1" in out
    assert "debian13: passed -> failed" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("new-", "newly"))]
    assert rows == [
        ["new-failure", "debian13", "a/x", "PASS", "(pass)", "FAIL", "(unexpected-failure)"],
        ["newly-flaky", "debian13", "a/y", "PASS", "(pass)", "PASS", "(flaky)"],
    ]


def test_history_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(tmp_path / "none.sqlite")]) == 0
    assert "no test history yet" in capsys.readouterr().err
    for mode, empty in ((["--flaky"], {"runs": 0, "tests": []}), (["--diff-last"], None), ([], [])):
        assert main(["history", "--db", str(tmp_path / "none.sqlite"), "--json", *mode]) == 0
        assert json.loads(capsys.readouterr().out) == empty
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--diff-last", "--test", "a/x"],
        ["--flaky", "--diff-last"],
        ["--last", "0"],
        ["--last", "-3"],
        ["--last", "ten"],
        ["--diff", "run0"],
        ["--slower", "25"],
        ["--slower-by", "soon"],
    ],
)
def test_bad_options_exit_2_with_one_line(
    db: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "--db", str(db), *argv])

    assert exit_info.value.code == 2
    error = capsys.readouterr().err.splitlines()
    assert error[-1].startswith("imagefactory history: error: argument")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--selection", "suite=quick"], "--selection only applies to --diff-last"),
        (["--diff-last", "--last", "3"], "--last does not apply"),
        (["--diff", "run0", "nosuch"], "no run nosuch in the test history"),
        (["--diff", "run", "run1"], "run run is ambiguous: run1, run0"),
        (["--diff", "last~2", "last"], "last~2: the test history"),
    ],
)
def test_usage_errors_exit_2(
    db: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--db", str(db), *argv]) == 2
    assert message in capsys.readouterr().err
