"""50-vdevs.sh makes sparse images of the spec's size, and a rerun leaves them alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from imagefactory.paths import hooks_dir

HOOK = hooks_dir() / "ztest" / "50-vdevs.sh"


def run(directory: Path, count: int, size: int) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "KLAB_VDEV_DIR": str(directory),
        "KLAB_VDEV_COUNT": str(count),
        "KLAB_VDEV_SIZE": str(size),
    }
    return subprocess.run([HOOK], env=env, capture_output=True, text=True, check=False)


def test_creates_sparse_images_of_the_requested_size(tmp_path: Path) -> None:
    vdevs = tmp_path / "vdevs"
    proc = run(vdevs, 8, 1024**3)
    assert proc.returncode == 0, proc.stderr
    files = sorted(vdevs.iterdir())
    assert [f.name for f in files] == [f"disk{i}.img" for i in range(8)]
    for image in files:
        assert image.stat().st_size == 1024**3
        assert image.stat().st_blocks == 0


def test_rerun_keeps_correct_images_and_fixes_wrong_ones(tmp_path: Path) -> None:
    vdevs = tmp_path / "vdevs"
    assert run(vdevs, 3, 1024**2).returncode == 0
    (vdevs / "disk0.img").write_bytes(b"keep")  # wrong size: replaced
    marker = vdevs / "disk1.img"
    before = marker.stat().st_mtime_ns
    proc = run(vdevs, 3, 1024**2)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("created") == 1
    assert (vdevs / "disk0.img").stat().st_size == 1024**2
    assert marker.stat().st_mtime_ns == before


def test_rejects_a_bad_size(tmp_path: Path) -> None:
    proc = run(tmp_path, 2, -1)
    assert proc.returncode == 1
    assert "bad vdev count/size" in proc.stderr
