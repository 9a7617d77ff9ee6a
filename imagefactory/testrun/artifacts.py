"""Where a test run's artifacts live: one directory per run, one below it per distro.

`/var/log/klab/<run-id>/` as root (logs of a lab machine belong under /var/log), the
state directory's `runs/` otherwise (`$XDG_STATE_HOME/klab/runs`, or `$KLAB_STATE_DIR/runs`);
`KLAB_LOG_DIR` overrides both.  The run directory holds the matrix, the Markdown summary
and the JUnit XML; each distro's directory holds what its clone produced, with `test.log`
(the suite's console) first among them.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagefactory.testrun.history import state_dir

ENV_LOG_DIR = "KLAB_LOG_DIR"

MATRIX_FILE = "matrix.txt"
SUMMARY_FILE = "summary.md"
JUNIT_FILE = "junit.xml"
RUN_FILE = "run.json"
TEST_LOG = "test.log"


def runs_root() -> Path:
    override = os.environ.get(ENV_LOG_DIR)
    if override:
        return Path(override)
    if os.geteuid() == 0 and not os.environ.get("KLAB_STATE_DIR"):
        return Path("/var/log/klab")
    return state_dir() / "runs"


def run_dir(run_id: str, root: Path | None = None) -> Path:
    return (root if root is not None else runs_root()) / run_id


def distro_dir(run_directory: Path, distro: str) -> Path:
    return run_directory / distro
