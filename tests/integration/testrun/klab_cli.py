"""`klab` as a user runs it (a real subprocess), with its state and runs under a test's tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def klab(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IMAGEFACTORY_STATE": str(tmp_path / "build-state"),
        "KLAB_LOG_DIR": str(tmp_path / "runs"),
    }
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", *args],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
