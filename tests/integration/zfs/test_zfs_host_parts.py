"""The ZFS-host runner's host-side parts, without booting: the tree disk, the results disk,
and reading pytest's JUnit XML back into node ids."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from imagefactory.vm.channel import HookResult
from imagefactory.vm.provision import ProvisionResult
from tests.fixtures.zfs_host import (
    GUEST_RESULTS_DIR,
    HOOKS,
    TEST_TOOLS,
    GuestSuite,
    blank_disk,
    pack_tree,
    parse_junit,
    read_results,
    suite_plan,
)


def _results_tar(files: dict[str, bytes]) -> bytes:
    """A tar as `tar -c -C DIR .` writes it in the guest (names start with ./)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_tree_disk_is_a_sector_aligned_tar_of_the_sources(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "pkg" / "__pycache__").mkdir(parents=True)
    (repo / "pkg" / "mod.py").write_text("x = 1\n")
    (repo / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (repo / "pyproject.toml").write_text("[project]\n")
    disk = pack_tree(tmp_path / "tree.tar", repo=repo, members=("pyproject.toml", "pkg"))
    assert disk.stat().st_size % 512 == 0
    with tarfile.open(disk) as tar:
        names = sorted(tar.getnames())
        owners = {(m.uid, m.gid) for m in tar.getmembers()}
    assert names == ["pkg", "pkg/mod.py", "pyproject.toml"]
    assert owners == {(0, 0)}


def test_results_written_as_a_tar_onto_the_blank_disk_are_read_back(tmp_path: Path) -> None:
    disk = blank_disk(tmp_path / "results.img", 1024 * 1024)
    assert read_results(disk) == {}  # the guest wrote nothing
    files = {"facts": b"pytest_rc=0\n", "pytest.log": b"1 passed\n"}
    with disk.open("r+b") as f:
        f.write(_results_tar(files))
    assert read_results(disk) == files
    assert disk.stat().st_size == 1024 * 1024


def test_junit_cases_come_back_as_pytest_node_ids_with_their_outcome() -> None:
    xml = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3">
<testcase classname="tests.integration.store.test_contract" name="test_a[zfs]" time="1.5"/>
<testcase classname="tests.integration.store.test_zfs_store" name="test_b" time="0.2">
<failure message="AssertionError: boom">trace</failure></testcase>
<testcase classname="tests.integration.store.test_zfs_store" name="test_c" time="0">
<skipped message="no /dev/zfs"/></testcase>
</testsuite></testsuites>"""
    cases = parse_junit(xml)
    assert [(c.node_id, c.outcome) for c in cases] == [
        ("tests/integration/store/test_contract.py::test_a[zfs]", "passed"),
        ("tests/integration/store/test_zfs_store.py::test_b", "failed"),
        ("tests/integration/store/test_zfs_store.py::test_c", "skipped"),
    ]
    assert cases[0].seconds == 1.5 and cases[1].message == "AssertionError: boom"


def test_the_plan_runs_tools_pool_then_suite_with_the_same_environment() -> None:
    plan = suite_plan(["tests/integration/store"], ["-x"])
    assert plan.names == ["05-test-tools.sh", "10-zfs-pool.sh", "20-zfs-suite.sh"]
    tools, pool, suite = plan.hooks
    assert tools.env == pool.env == suite.env
    assert suite.env["IMAGEFACTORY_ZFS_TEST_TOOLS"].split() == list(TEST_TOOLS)
    assert suite.env["IMAGEFACTORY_ZFS_TESTS"] == "tests/integration/store"
    assert suite.env["IMAGEFACTORY_ZFS_PYTEST_ARGS"] == "-x"
    assert suite.env["IMAGEFACTORY_ZFS_RESULTS"] == GUEST_RESULTS_DIR
    assert all((HOOKS / name).stat().st_mode & 0o111 for name in plan.names)


def test_a_failure_report_shows_the_guest_failures_not_just_the_tail(tmp_path: Path) -> None:
    log = "\n".join(
        [
            "tests/integration/store/test_zfs_store.py::test_x FAILED",
            "=================================== FAILURES ===================================",
            "______ test_x ______",
            "E       AssertionError: readonly is off",
            *(f"slow test line {i}" for i in range(300)),
            "========================= 1 failed, 44 passed in 400s ==========================",
        ]
    )
    result = ProvisionResult(
        outcome="failed",
        message="hook 20-zfs-suite.sh failed",
        hooks=[HookResult("20-zfs-suite.sh", "failed", 1, 400.0)],
        console_log=tmp_path / "console.log",
        failed_hook="20-zfs-suite.sh",
        failed_rc=1,
    )
    suite = GuestSuite(result, {"pytest.log": log.encode(), "facts": b"pytest_rc=1\n"}, "", 500.0)
    text = suite.explain()
    assert "AssertionError: readonly is off" in text
    assert "1 failed, 44 passed" in text
    assert "20-zfs-suite.sh" in text and suite.pytest_rc == 1
