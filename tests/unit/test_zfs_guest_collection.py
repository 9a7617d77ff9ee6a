"""The ZFS-host guest can collect its tests: a check that needs no VM.

The guest runs `pytest --noconftest -p tests.fixtures.stores -m zfs` over `ZFS_TEST_PATHS`
with Debian's python3 plus python3-pytest, python3-structlog and what cloud-init pulls in
(requests, jinja2, yaml) -- not pydantic, hypothesis, tenacity or the other libraries of
this venv.  A module in that folder importing one of them at the top fails the guest's
collection, and with it every ZFS store test, only after a ten-minute boot.  Here the same
collection runs in a subprocess whose imports of those libraries fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures.zfs_host import ZFS_TEST_PATHS

REPO = Path(__file__).resolve().parents[2]
HOOK = REPO / "tests" / "integration" / "zfs" / "hooks" / "20-zfs-suite.sh"

ABSENT_IN_GUEST = ("pydantic", "hypothesis", "tenacity", "hcl2", "pycdlib", "rich", "qemu",
                   "prometheus_client", "packaging")  # fmt: skip

COLLECT = """
import importlib.abc, sys
ABSENT = set(sys.argv[1].split(","))
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r} (absent in the guest)")
        return None
sys.meta_path.insert(0, Absent())
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "--noconftest",
    "-p", "no:hypothesispytest", "-p", "tests.fixtures.stores", "-m", "zfs",
    *sys.argv[2:]]))
"""


def test_the_guest_hook_still_runs_this_command() -> None:
    text = HOOK.read_text(encoding="utf-8")
    assert "--noconftest -p tests.fixtures.stores" in text and "-m zfs" in text


def test_the_zfs_store_tests_collect_without_the_venvs_libraries() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", COLLECT, ",".join(ABSENT_IN_GUEST), *ZFS_TEST_PATHS],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
    assert " collected" in proc.stdout
