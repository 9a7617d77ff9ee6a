"""Where a test run's artifacts live: one directory per run, one below it per distro.

`/var/log/klab/<run-id>/` as root (logs of a lab machine belong under /var/log), the
state directory's `runs/` otherwise or when IMAGEFACTORY_STATE is set; `KLAB_LOG_DIR`
overrides both (`settings.runs_dir`).  The run directory holds the matrix, the Markdown summary
and the JUnit XML; each distro's directory holds what its clone produced, with `test.log`
(the suite's console) first among them.
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.settings import runs_dir

MATRIX_FILE = "matrix.txt"
SUMMARY_FILE = "summary.md"
JUNIT_FILE = "junit.xml"
RUN_FILE = "run.json"
TEST_LOG = "test.log"


def run_dir(run_id: str, root: Path | None = None) -> Path:
    return (root if root is not None else runs_dir()) / run_id


def distro_dir(run_directory: Path, distro: str) -> Path:
    return run_directory / distro
