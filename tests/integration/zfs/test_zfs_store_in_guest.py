"""The zfs store's tests on real OpenZFS: run inside the ZFS-host guest, judged here.

The guest boots once per session (`zfs_guest_suite`): it loads the zfs module DKMS built
for its kernel at bootstrap, makes a pool on a sparse file, and runs `pytest -m zfs` over
the store tests against `<pool>/vms`.  A failure in there is a failure here, with the
guest's pytest output in the message; so is a zfs test that did not run, or ran but skipped
(the host collects the same selection and compares), and so is a run of zero tests.
"""

from __future__ import annotations

import pytest

from tests.fixtures.zfs_host import ZFS_TEST_PATHS, GuestSuite, collect_zfs_tests

# Cold: ~10 min to build the image on top of the boot and the suite; a busy host is slower.
pytestmark = [pytest.mark.vm, pytest.mark.timeout(7200)]


def test_every_zfs_store_test_runs_and_passes_on_real_openzfs(
    zfs_guest_suite: GuestSuite,
) -> None:
    suite = zfs_guest_suite
    expected = collect_zfs_tests(ZFS_TEST_PATHS)
    print(suite.provision.report())
    print(f"facts: {suite.facts}")
    print(f"guest: {len(suite.cases)} zfs test(s) ran, {len(suite.outcomes('passed'))} passed")
    assert expected, "the host collected no zfs tests: the selection is broken"
    assert suite.cases, "no zfs test ran in the guest\n" + suite.explain()
    assert suite.pytest_rc == 0, suite.explain()
    assert suite.outcomes("failed") == [] and suite.outcomes("error") == [], suite.explain()
    assert suite.outcomes("skipped") == [], suite.explain()
    assert sorted(suite.outcomes("passed")) == sorted(expected), suite.explain()
    assert suite.provision.ok, suite.explain()


def test_the_guest_ran_the_module_dkms_built_for_its_own_kernel(
    zfs_guest_suite: GuestSuite,
) -> None:
    facts = zfs_guest_suite.facts
    assert facts.get("zfs_module"), zfs_guest_suite.explain()
    # Userland and module come from the same OpenZFS release (zfsutils-linux, zfs-dkms).
    assert facts["zfs_module"].split("-")[0] in facts.get("zfs_userland", ""), facts
    assert facts.get("kernel", "").endswith("-cloud-amd64"), facts
