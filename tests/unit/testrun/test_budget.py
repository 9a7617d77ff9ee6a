"""One VM budget for --jobs x --clones (testrun/budget.py), on the real distro specs."""

from __future__ import annotations

import pytest

from imagefactory.errors import UsageError
from imagefactory.spec.model import DistroSpec
from imagefactory.testrun.budget import vm_budget
from imagefactory.testrun.resolve import resolve_distros

GIB = 1024**3


@pytest.fixture(scope="module")
def specs() -> list[DistroSpec]:
    return [r.spec for r in resolve_distros(["all"])]  # five distros, 4 GiB and 2 vCPUs each


def test_tcg_on_two_cores_gives_one_clone_of_two_vcpus(specs: list[DistroSpec]) -> None:
    """Measured (bench/teststage.py --scale-out): two clones of one vCPU were 1.28x slower."""
    budget = vm_budget(specs[:1], jobs=None, clones=None, accel="tcg", memory=64 * GIB, cores=2)
    assert (budget.slots, budget.jobs, budget.clones, budget.cpus) == (1, 1, 1, None)
    assert budget.warning is None
    five = vm_budget(specs, jobs=None, clones=None, accel="tcg", memory=64 * GIB, cores=2)
    assert (five.jobs, five.clones, five.cpus) == (1, 1, None)  # one distro at a time


def test_one_clone_alone_keeps_the_specs_vcpus(specs: list[DistroSpec]) -> None:
    budget = vm_budget(specs[:1], jobs=None, clones=1, accel="tcg", memory=64 * GIB, cores=2)
    assert (budget.clones, budget.cpus) == (1, None)


def test_kvm_is_limited_by_memory_five_distros_on_a_big_host(specs: list[DistroSpec]) -> None:
    budget = vm_budget(specs, jobs=None, clones=None, accel="kvm", memory=25 * GIB, cores=8)
    assert (budget.slots, budget.jobs, budget.clones) == (5, 5, 1)  # 5 x (4 GiB + 1 GiB)
    assert budget.cpus == 3  # 16 vCPUs shared by 5 VMs; a spec's 2 stays 2 (stage.prepare)
    small = vm_budget(specs, jobs=None, clones=None, accel="kvm", memory=11 * GIB, cores=8)
    assert (small.slots, small.jobs, small.clones) == (2, 2, 1)


def test_clones_fill_what_the_distros_leave(specs: list[DistroSpec]) -> None:
    budget = vm_budget(specs[:2], jobs=None, clones=None, accel="tcg", memory=64 * GIB, cores=8)
    assert (budget.jobs, budget.clones, budget.cpus) == (2, 2, 2)  # 4 VMs of 2 vCPUs
    one = vm_budget(specs[:2], jobs=1, clones=None, accel="tcg", memory=64 * GIB, cores=8)
    assert (one.jobs, one.clones, one.cpus) == (1, 4, 2)


def test_more_than_the_budget_is_honoured_with_a_warning(specs: list[DistroSpec]) -> None:
    budget = vm_budget(specs[:1], jobs=None, clones=4, accel="tcg", memory=64 * GIB, cores=2)
    assert (budget.clones, budget.cpus) == (4, 1)
    assert budget.warning is not None and "4 VMs, more than the 1" in budget.warning
    assert "2 vCPU(s) at 2 per VM" in budget.warning


def test_never_zero_and_bad_values_are_usage_errors(specs: list[DistroSpec]) -> None:
    tiny = vm_budget(specs, jobs=None, clones=None, accel="tcg", memory=GIB, cores=1)
    assert (tiny.slots, tiny.jobs, tiny.clones) == (1, 1, 1)
    with pytest.raises(UsageError, match="--clones"):
        vm_budget(specs, jobs=None, clones=0, accel="tcg")
    with pytest.raises(UsageError, match="--jobs"):
        vm_budget(specs, jobs=0, clones=None, accel="tcg")


def test_the_share_follows_the_vms_that_really_run(specs: list[DistroSpec]) -> None:
    budget = vm_budget(specs[:1], jobs=None, clones=None, accel="tcg", memory=64 * GIB, cores=2)
    assert budget.share(1) is None  # recipes (never split): one VM keeps the spec's vCPUs
    assert budget.share(2) == 1
