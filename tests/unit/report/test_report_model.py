"""The report's data and command without a browser: what goes on the page, and the errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.report.charts import duration_label
from imagefactory.report.model import gather
from imagefactory.report.render import render, write_run_report
from imagefactory.testrun.run_files import write_run_files
from imagefactory.testrun.selection import parse_selection
from tests.fixtures.report_runs import make_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    root = tmp_path_factory.mktemp("runs")
    history = root / "history.sqlite"
    return make_runs(root / "runs", history, 3), history


def test_gathered_data_follows_run_json_and_the_traces(runs: tuple[list[Path], Path]) -> None:
    run_dirs, history = runs
    data = gather(run_dirs[-1], history=history)
    run = json.loads((run_dirs[-1] / "run.json").read_text())
    assert data.run_id == run["run_id"] and data.exit_status == run["exit_status"] == 1
    assert [d.name for d in data.distros] == [d["distro"] for d in run["distros"]]
    debian = data.distros[0]
    assert debian.build_id == "debian13-b1" and debian.accel == "tcg"
    assert debian.kernel == "6.12.48+deb13-amd64"
    assert debian.traces["status"]["arc"]["attached"] is False
    assert debian.traces["status"]["spl"] == {
        "attached": False,
        "reason": "no output: the guest brought back no spl.txt",
    }
    assert set(debian.traces["zio"]["ops"]) == {"read", "write", "free", "vdev-child"}
    failing = [
        t["name"] for t in run["distros"][0]["tests"] if t["verdict"] == "unexpected-failure"
    ]
    assert [f.test for f in data.failures if f.distro == "debian13"] == failing
    excerpt = data.failures[0].excerpt
    assert excerpt is not None and excerpt.count("\n") < 30 and "ERROR:" in excerpt
    assert data.failures[0].log_link is not None
    assert (run_dirs[-1] / data.failures[0].log_link).is_file()
    # Trends: one pass-rate point per run so far, this run's slowest tests.
    assert [len(p) for p in data.trends["pass_rate"].values()] == [3, 3, 3]
    assert data.trends["slowest"][0]["duration_s"] >= data.trends["slowest"][-1]["duration_s"]


def test_without_history_the_page_says_so(runs: tuple[list[Path], Path], tmp_path: Path) -> None:
    html = render(gather(runs[0][0], history=tmp_path / "none.sqlite"))
    assert "No test history to draw trends from." in html
    assert 'id="pass-rate"' not in html


def test_a_directory_without_run_json_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"has no run\.json"):
        gather(tmp_path)
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match='no "distros" list'):
        gather(tmp_path)


def test_the_end_of_a_run_writes_report_html(tmp_path: Path) -> None:
    files = write_run_files(tmp_path, "r1", parse_selection(suite="quick"), [])
    assert files["report"] == tmp_path / "report.html"
    assert "klab run <code>r1</code>" in files["report"].read_text()


def test_a_report_that_cannot_be_written_does_not_fail_the_run(tmp_path: Path) -> None:
    assert write_run_report(tmp_path / "missing") is None  # no run.json: logged, not raised


def test_labels() -> None:
    assert duration_label(4e-6) == "4 µs"
    assert duration_label(0.0015) == "1.5 ms"
    assert duration_label(None) == "∞"


def _klab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", *args], capture_output=True, text=True, check=False
    )


def test_command(runs: tuple[list[Path], Path], tmp_path: Path) -> None:
    run_dirs, history = runs
    out = tmp_path / "r.html"
    proc = _klab("report", "last~1", "--history", str(history), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out) and run_dirs[-2].name in out.read_text()
    proc = _klab("report", str(tmp_path / "nope" / "run"), "--history", str(history))
    assert proc.returncode == 2 and "no such run directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = _klab("report", "last~9", "--history", str(history))
    assert proc.returncode == 2 and "holds 3 run(s)" in proc.stderr


def test_clones_and_boots_are_searched_and_linked(
    runs: tuple[list[Path], Path], tmp_path: Path
) -> None:
    """With `--clones` (the default fills the host) a distro's results sit in `clone-<k>/`
    and, after a crash, `boot-<n>/`: the excerpts come from there and each piece's files are
    linked under its own name."""
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(runs[0][-1], run_dir)
    debian = run_dir / "debian13"
    first = debian / "clone-1"
    retried = debian / "clone-2" / "boot-2"
    retried.mkdir(parents=True)
    first.mkdir()
    shutil.move(debian / "test_results", retried / "test_results")
    (first / "console.log").write_text("[    0.000000] Linux version 6.12\n")
    (retried / "crash.txt").write_text("Kernel panic - not syncing\n")
    data = gather(run_dir, history=runs[1])
    [distro] = [d for d in data.distros if d.name == "debian13"]
    assert {"clone-1/console.log", "clone-2/boot-2/crash.txt"} <= set(distro.links)
    assert (run_dir / distro.links["clone-1/console.log"]).is_file()
    failures = [f for f in data.failures if f.distro == "debian13"]
    assert failures and failures[0].excerpt is not None and "ERROR:" in failures[0].excerpt
    assert failures[0].log_link is not None
    assert failures[0].log_link.startswith("debian13/clone-2/boot-2/test_results/")
