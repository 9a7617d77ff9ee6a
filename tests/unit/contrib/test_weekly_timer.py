"""`make install-timers`: the weekly linux.run units, rendered as installed and verified.

Real parts: the Makefile target run by make into a temporary DESTDIR, and systemd's own
`systemd-analyze verify` on the installed files (it loads them as systemd would, checks
every setting and that ExecStart's program exists and is executable).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
UNIT_DIR = "etc/systemd/system"
UNITS = ("klab-weekly-linux.service", "klab-weekly-linux.timer")


def install_timers(destdir: Path, *make_vars: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), "install-timers", f"DESTDIR={destdir}", *make_vars],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.fixture(scope="module")
def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed: nothing to verify the units with")
    return found


def test_the_installed_units_pass_systemd_analyze_verify(tmp_path: Path, analyze: str) -> None:
    # The klab this test runs under stands in for the installed one: verify checks it exists.
    klab = Path(sys.executable).with_name("klab")
    assert klab.is_file(), f"{klab}: the venv's klab script (make venv)"
    proc = install_timers(tmp_path, f"KLAB={klab}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    installed = [tmp_path / UNIT_DIR / name for name in UNITS]
    verify = subprocess.run(
        [analyze, "verify", *map(str, installed)], capture_output=True, text=True, check=False
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "klab-weekly-linux" not in verify.stderr, verify.stderr
    service = unit(installed[0])
    assert service["Service"]["ExecStart"] == f"{klab} test all --suite linux"
    assert service["Service"]["Type"] == "oneshot"
    timer = unit(installed[1])
    assert timer["Timer"]["Unit"] == "klab-weekly-linux.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    for path in installed:
        assert path.stat().st_mode & 0o777 == 0o644
        assert "@KLAB@" not in path.read_text()


def test_the_timer_fires_on_sunday_night(tmp_path: Path, analyze: str) -> None:
    assert install_timers(tmp_path).returncode == 0
    spec = unit(tmp_path / UNIT_DIR / UNITS[1])["Timer"]["OnCalendar"]
    shown = subprocess.run(
        [analyze, "calendar", "--iterations=3", spec], capture_output=True, text=True, check=True
    ).stdout
    # "Next elapse: Sun 2026-12-06 22:00:00 UTC", "Iter. #2: Sun 2026-12-13 22:00:00 UTC"...
    elapses = [
        line.split(": ", 1)[1]
        for line in shown.splitlines()
        if line.strip().startswith(("Next elapse:", "Iter. #"))
    ]
    assert len(elapses) == 3, shown
    assert all(when.startswith("Sun ") and " 22:00:00" in when for when in elapses), shown


def test_the_default_install_names_the_klab_under_prefix(tmp_path: Path) -> None:
    proc = install_timers(tmp_path, "PREFIX=/opt/klab")
    assert proc.returncode == 0, proc.stderr
    service = unit(tmp_path / UNIT_DIR / UNITS[0])
    assert service["Service"]["ExecStart"] == "/opt/klab/bin/klab test all --suite linux"
    assert "enable --now klab-weekly-linux.timer" in proc.stdout


def test_a_relative_klab_path_is_refused(tmp_path: Path) -> None:
    proc = install_timers(tmp_path, "KLAB=klab")
    assert proc.returncode != 0
    assert "KLAB=klab: give the absolute path of the installed klab" in proc.stdout
    assert not (tmp_path / UNIT_DIR).exists()
