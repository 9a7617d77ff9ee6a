"""One host-wide VM budget for the test stage: distros at once (--jobs) x clones each (--clones).

Both options draw on the same VMs, so they are sized together, by the one job sizer's
rules (testrun/jobs.py): each VM needs its memory plus QEMU's overhead out of MemAvailable,
and vCPUs of guest work out of the host's cores.  What a core carries depends on the
accelerator:

- TCG (no KVM): a vCPU is a host thread emulating instructions flat out, so one vCPU of guest
  work per host core; more only makes every guest slower until the suite's own timeouts
  fire.  And each VM gets at least two of them (MIN_VCPUS_PER_VM): measured here, one
  clone of two vCPUs beats two clones of one on a 2-core host.
- KVM: vCPUs run natively and the suite mostly waits on I/O and sleeps, so two vCPUs per
  core; memory is then what limits, which is the documented "five distros in parallel on a
  host with >= 24 GB" (4 GiB guests plus overhead).

The default fills the budget: every distro at once if it fits, then as many clones each as
the rest allows.  When several VMs share the host (distros x clones), each gets its share
of the vCPUs (at most the spec's, at least one); a single VM keeps the spec's.  Explicit values are
honoured (the user may know better); more VMs than the budget gets a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagefactory.errors import UsageError
from imagefactory.testrun.jobs import host_capacity

if TYPE_CHECKING:
    from imagefactory.spec.model import DistroSpec

MAX_CLONES = 64
#: The fewest vCPUs a VM the default plans gets.  TCG: two.  `bench/teststage.py --scale-out`
#: on a 2-core host (2026-12-03, 15 quick-suite tests of 5 sections, the Debian golden): one
#: clone of two vCPUs 464 s, two clones of one vCPU 592 s (1.28x slower).  A one-vCPU guest
#: serialises what the suite runs side by side (ksh and zfs processes, txg sync and zio
#: taskq threads), and every clone pays its own boot, bpftrace compile and collection.
#: KVM: one (vCPUs run natively; memory is what limits).
MIN_VCPUS_PER_VM = {"tcg": 2, "kvm": 1}


@dataclass(frozen=True)
class VmBudget:
    slots: int
    """VMs the host carries at once."""
    jobs: int
    """Distros at once."""
    clones: int
    """Clones per distro (an upper bound: a distro with fewer sections gets fewer)."""
    cpus: int | None
    """Each VM's share of the vCPUs when several share the host (a spec asking for fewer
    keeps its own); None: one VM, the spec's own."""
    vcpus: int = 1
    """vCPUs the host carries in all."""
    warning: str | None = None

    def share(self, vms: int) -> int | None:
        """Each VM's vCPUs when `vms` VMs actually run at once (fewer clones than planned:
        recipes, few sections); None for one VM."""
        return max(1, self.vcpus // vms) if vms > 1 else None

    def describe(self) -> str:
        cpus = f", {self.cpus} vCPU(s) each" if self.cpus is not None else ""
        return f"{self.jobs} distro(s) x {self.clones} clone(s) of {self.slots} VM(s){cpus}"


def host_slots(
    specs: Sequence[DistroSpec], accel: str, *, memory: int | None = None, cores: int | None = None
) -> tuple[int, int]:
    """(VMs the host carries, vCPUs it carries) for these distros' VMs."""
    by_memory, vcpus = host_capacity(specs, accel=accel, memory=memory, cores=cores)
    by_cores = vcpus // MIN_VCPUS_PER_VM.get(accel, 1)
    return max(1, min(by_memory, by_cores)), vcpus


def vm_budget(
    specs: Sequence[DistroSpec],
    *,
    jobs: int | None,
    clones: int | None,
    accel: str,
    memory: int | None = None,
    cores: int | None = None,
) -> VmBudget:
    """Distros at once, clones each and their vCPUs, from one budget (see the module doc)."""
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if clones is not None and not 1 <= clones <= MAX_CLONES:
        raise UsageError(f"--clones must be between 1 and {MAX_CLONES}, not {clones}")
    slots, vcpus = host_slots(specs, accel, memory=memory, cores=cores)
    distros = max(1, len(specs))
    chosen_jobs = min(jobs, distros) if jobs is not None else min(distros, slots)
    chosen_clones = clones if clones is not None else max(1, slots // chosen_jobs)
    vms = chosen_jobs * chosen_clones
    cpus = max(1, vcpus // vms) if vms > 1 else None
    warning = None
    if vms > slots:
        warning = (
            f"{chosen_jobs} distro(s) x {chosen_clones} clone(s) = {vms} VMs, more than the "
            f"{slots} this host carries ({accel}: memory, and {vcpus} vCPU(s) at "
            f"{MIN_VCPUS_PER_VM.get(accel, 1)} per VM); each gets fewer vCPUs, expect a slower "
            "run or the suite's timeouts"
        )
    return VmBudget(slots, chosen_jobs, chosen_clones, cpus, vcpus, warning)
