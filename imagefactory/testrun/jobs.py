"""How many VMs to run at once (builds or test clones): as many as free memory and cores carry.

The one job sizer: `imagefactory golden all --jobs N` and `klab test --jobs N` both come
here.  Each VM has the spec's memory and vCPUs.  Over-committing memory makes the host
swap or the OOM killer pick a QEMU; over-committing cores under TCG makes every guest so
slow that the suite's own timeouts fire.  So the host allows the smaller of what memory
(each VM's RAM plus 1 GiB for QEMU and the page cache, against MemAvailable) and cores
carry, and never more than there are distros.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from imagefactory.errors import UsageError

if TYPE_CHECKING:
    from imagefactory.spec.model import DistroSpec

log = structlog.get_logger(__name__)

QEMU_OVERHEAD = 1024**3


def available_memory() -> int:
    """MemAvailable (what can be used without swapping), else free pages."""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
    except OSError:
        meminfo = ""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


VCPUS_PER_CORE = {"tcg": 1, "kvm": 2}
"""vCPUs of guest work a host core carries: under TCG a vCPU is a host thread emulating
flat out; with KVM the suite mostly waits on I/O and sleeps (see testrun/budget.py)."""


def host_capacity(
    specs: Sequence[DistroSpec],
    *,
    accel: str = "tcg",
    memory: int | None = None,
    cores: int | None = None,
) -> tuple[int, int]:
    """(VMs of the largest spec's memory that MemAvailable carries, vCPUs the cores carry
    under `accel`): the two limits every sizing here starts from."""
    memory = available_memory() if memory is None else memory
    cores = (os.cpu_count() or 1) if cores is None else cores
    largest = max((int(s.vm.memory) for s in specs), default=0)
    return memory // (largest + QEMU_OVERHEAD), max(1, cores * VCPUS_PER_CORE.get(accel, 1))


def default_jobs(
    specs: Sequence[DistroSpec], *, memory: int | None = None, cores: int | None = None
) -> int:
    """Build VMs the host carries at once (at least 1): each gets its spec's vCPUs."""
    if not specs:
        return 1
    by_memory, vcpus = host_capacity(specs, memory=memory, cores=cores)
    by_cores = vcpus // max(s.vm.cpus for s in specs)
    jobs = max(1, min(by_memory, by_cores, len(specs)))
    log.debug("jobs.sized", by_memory=by_memory, by_cores=by_cores, jobs=jobs)
    return jobs


def resolve_jobs(
    requested: int | None, specs: Sequence[DistroSpec], *, within_host: bool = False
) -> int:
    """None sizes to the host.  An explicit --jobs is honoured up to the number of distros;
    `within_host` also caps it at what the host carries (builds: a build VM that cannot get
    its memory fails late, after the fetch)."""
    if requested is None:
        return default_jobs(specs)
    if requested < 1:
        raise UsageError("--jobs must be at least 1")
    cap = default_jobs(specs) if within_host else len(specs)
    return max(1, min(requested, cap, len(specs)))
