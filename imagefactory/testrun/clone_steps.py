"""One distro's test run as steps: clone → seed → boot → collect, on the build's runner.

The steps run on `builder.steps.AsyncStepRunner`, the runner the build uses, so the ending
is the build's too: every started step is finished off in reverse order, on success, on a
failure and on Ctrl-C (a cancellation).  `klab test --keep` is the runner's keep policy:

- clone: makes the clone; its cleanup destroys it, its `keep` records it (kept-clone.txt
  with the stage's own QEMU argument list);
- seed: the clone's seed, SSH key and results disk in the distro's `.work` directory,
  removed whatever happened (a kept clone's key moves to the artifacts first);
- boot: boots the clone and runs the test hook; `Machine` stops QEMU on every path; a
  guest that crashes or hangs (watch.py) ends the step with `GuestCrashed`, which the stage
  turns into a crashed test and a fresh clone for the rest (clones.py);
- collect: unpacks the results disk and judges the artifacts (`collect.py`).

A run fails without an exception when its tests fail: `CloneRun.failed` tells the runner.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from imagefactory.errors import ImageFactoryError
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Clone, Golden
from imagefactory.testrun.bpftrace_option import scripts_for
from imagefactory.testrun.collect import GoldenFacts, Judged, Judging, judge
from imagefactory.testrun.kept import keep_clone, move_key
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.resolve import DistroTests
from imagefactory.testrun.results_disk import ResultsDiskError, extract_results
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.watch import ConsoleWatch, GuestCrashed
from imagefactory.vm.firmware import UefiFirmware
from imagefactory.vm.fromspec import uefi_firmware, vm_config
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.provision import ProvisionResult, provision_async
from imagefactory.vm.qemu_args import VmConfig
from imagefactory.vm.seed import SshKeyPair

if TYPE_CHECKING:
    from imagefactory.builder.steps import AsyncStep
    from imagefactory.testrun.stage import Stage

log = structlog.get_logger(__name__)

WORK_DIR = ".work"


def random_mac() -> str:
    """A MAC in QEMU's 52:54:00 range, new for every clone (the network config binds to it)."""
    tail = secrets.token_bytes(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


@dataclass
class BootFiles:
    """One clone's boot: the files it needs, all under the distro's .work directory."""

    config: VmConfig
    plan: HookPlan
    results_disk: Path
    ssh_key: SshKeyPair
    uefi: UefiFirmware | None

    @property
    def mac(self) -> str:
        return self.config.mac


@dataclass
class CloneRun:
    """What the steps of one distro's run share, filled in as they go."""

    resolved: ResolvedSpec
    golden: Golden
    facts: GoldenFacts
    artifacts: Path
    tests: DistroTests | None = None
    """This boot's tests (a clone's part, a resume); None: the stage's plan for the distro."""
    selection: Selection | None = None
    """This boot's selection (a resume's recipes); None: the stage's."""
    cpus: int | None = None
    """The VM's vCPU share when several VMs share the host (budget.py); None: the spec's."""
    clone: Clone | None = None
    boot: BootFiles | None = None
    result: ProvisionResult | None = None
    judged: Judged | None = None
    kept_key: Path | None = None
    leak: str | None = None
    """Why the clone could not be destroyed (added to the outcome)."""

    @property
    def work(self) -> Path:
        return self.artifacts / WORK_DIR

    @property
    def failed(self) -> bool:
        """The run's own verdict, for the keep policy: anything but a pass."""
        return self.judged is None or self.judged.outcome.status is not DistroStatus.PASSED


class CloneStep:
    name = "clone"

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def run(self, ctx: CloneRun) -> None:
        leaf = ctx.resolved.golden_leaf
        ctx.clone = await self.stage.store_call(self.stage.store.clone, leaf)
        log.info("test.cloned", distro=ctx.resolved.spec.name, clone=ctx.clone.name, golden=leaf)

    def cleanup(self, ctx: CloneRun) -> None:
        """Destroy the clone; a failure is noted on the outcome, never raised."""
        if ctx.clone is None:
            return
        try:
            self.stage.store.destroy_clone(ctx.clone)
        except ImageFactoryError as exc:
            log.error("test.clone.leak", clone=ctx.clone.name, error=str(exc))
            ctx.leak = f"the clone {ctx.clone.name} could not be destroyed: {exc}"

    def keep(self, ctx: CloneRun) -> None:
        """Record the kept clone with the VM the stage booted (or would have booted)."""
        if ctx.clone is None:
            return
        spec = ctx.resolved.spec
        if ctx.boot is not None:
            config, uefi = ctx.boot.config, ctx.boot.uefi
        else:  # the seed step never finished: the adapter's VM, with its default MAC
            accel = self.stage.known_accel(spec.vm.cpu_model)
            config = vm_config(
                spec,
                disk=ctx.clone.path,
                disk_format=ctx.clone.format,
                seed=None,
                accel=accel,
                name=clone_vm_name(ctx.resolved, ctx.clone),
            )
            uefi = uefi_firmware(spec)
        kept = keep_clone(
            spec,
            self.stage.store.spec,
            ctx.clone,
            ctx.artifacts,
            config,
            ssh_key=ctx.kept_key,
            uefi=uefi,
            qemu=self.stage.options.qemu,
        )
        self.stage.kept.append(kept)


def clone_vm_name(resolved: ResolvedSpec, clone: Clone) -> str:
    return f"{resolved.golden_leaf}-test-{clone.clone_id}"


class SeedStep:
    name = "seed"

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def run(self, ctx: CloneRun) -> None:
        assert ctx.clone is not None
        ctx.boot = await asyncio.to_thread(
            functools.partial(
                self.stage.prepare,
                ctx.resolved,
                ctx.clone,
                ctx.work,
                tests=ctx.tests,
                selection=ctx.selection,
                cpus=ctx.cpus,
            )
        )

    def cleanup(self, ctx: CloneRun) -> None:
        shutil.rmtree(ctx.work, ignore_errors=True)

    def keep(self, ctx: CloneRun) -> None:
        """A kept clone stays reachable with the run's key: it moves out of .work first."""
        if ctx.boot is not None:
            ctx.kept_key = move_key(ctx.boot.ssh_key.private_key, ctx.artifacts)
        self.cleanup(ctx)


class BootStep:
    """Boot the clone and run the test hook; stop early when the runner never starts."""

    name = "boot"

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def run(self, ctx: CloneRun) -> None:
        boot = ctx.boot
        assert boot is not None
        name = ctx.resolved.spec.name
        log.info("test.boot", distro=name, vm=boot.config.name, accel=boot.config.accel)
        watch = ConsoleWatch(
            ctx.artifacts / "console.log",
            name,
            boot_allowance=self.stage.options.boot_allowance,
            report=self.stage.report,
            hang_timeout=self.stage.options.hang_timeout,
            crash_grace=self.stage.options.crash_grace,
        )
        provisioning = asyncio.create_task(
            provision_async(
                boot.config,
                boot.plan,
                log_dir=ctx.artifacts,
                qemu=self.stage.options.qemu,
                uefi=boot.uefi,
            )
        )
        watching = asyncio.create_task(watch.run())
        try:
            await asyncio.wait({provisioning, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not provisioning.done():
                watching.result()  # raises BootStalled; `finally` stops the VM
            ctx.result = provisioning.result()
            await asyncio.to_thread(watch.read_now)  # the console's last lines (a panic's)
        finally:
            for task in (watching, provisioning):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        (ctx.artifacts / "hooks.txt").write_text(ctx.result.report() + "\n", encoding="utf-8")
        shutdown = ctx.result.shutdown
        if watch.crash is not None:
            raise GuestCrashed(f"the guest crashed: {watch.crash}")
        if shutdown is not None and shutdown.panicked:
            raise GuestCrashed("the guest kernel panicked (pvpanic: QEMU stopped the VM)")

    def cleanup(self, ctx: CloneRun) -> None:
        """`Machine` already stopped QEMU, on every path."""


class CollectStep:
    """Unpack the results disk into the artifacts and judge them."""

    name = "collect"

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def run(self, ctx: CloneRun) -> None:
        boot, result = ctx.boot, ctx.result
        assert boot is not None and result is not None
        name, facts, artifacts = ctx.resolved.spec.name, ctx.facts, ctx.artifacts
        hook_seconds = result.hooks[0].seconds if result.hooks else None
        try:
            await asyncio.to_thread(extract_results, boot.results_disk, artifacts)
        except ResultsDiskError as exc:
            vm = "" if result.ok else f"; the VM: {result.summary().splitlines()[0]}"
            ctx.judged = Judged(
                DistroOutcome.failed_infrastructure(
                    name,
                    f"{exc}{vm}",
                    duration_s=hook_seconds,
                    **facts.outcome_fields(),
                    artifacts_dir=str(artifacts),
                )
            )
            return
        bpf = scripts_for(self.stage.options.bpf)
        judging = Judging(self.stage.options.baseline, boot.config.accel, bpf)
        selection = ctx.selection or self.stage.selection
        judged = await asyncio.to_thread(
            judge, name, artifacts, selection, facts, duration=hook_seconds, judging=judging
        )
        if not result.ok:
            note = f"the VM: {result.summary().splitlines()[0]}"
            outcome = judged.outcome
            outcome.message = f"{outcome.message}; {note}" if outcome.message else note
        ctx.judged = judged

    def cleanup(self, ctx: CloneRun) -> None:
        """Read-only on the host's side: the artifacts are the run's output."""


def clone_steps(stage: Stage) -> list[AsyncStep[CloneRun]]:
    return [CloneStep(stage), SeedStep(stage), BootStep(stage), CollectStep(stage)]
