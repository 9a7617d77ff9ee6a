"""remove_unheld: gc's one rule for lock and lease files -- only a file nobody holds goes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from imagefactory.flock import remove_unheld

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_only_unheld_regular_files_are_removed_and_dry_run_removes_nothing(
    tmp_path: Path,
) -> None:
    held, free = tmp_path / "held.lock", tmp_path / "free.lock"
    held.touch()
    free.touch()
    target = tmp_path / "not-ours"
    target.touch()
    link = tmp_path / "link.lock"
    link.symlink_to(target)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(held)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        paths = [held, free, link, tmp_path / "missing.lock"]
        assert remove_unheld(paths, dry_run=True) == [free]
        assert free.exists()
        assert remove_unheld(paths) == [free]
        assert not free.exists() and held.exists() and link.is_symlink() and target.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_unheld([held]) == [held] and not held.exists()
