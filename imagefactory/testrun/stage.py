"""The test stage: each distro's ztest golden → clone → own seed → boot → run → judge.

For every distro, in parallel as far as the host allows (`jobs`):
1. resolve the current ztest golden; none is "not built" (an infrastructure error naming
   `make golden-ztest DISTRO=...`), never a crash;
2. clone it (qcow2 overlay or zvol clone) and give the clone its own seed: a new
   instance-id, host name, MAC and SSH key, and the one hook that runs the tests
   (hooks/testrun/50-klab-test.sh, see `guest.py`);
3. boot it with a raw results disk attached; the guest runs the selection as the test
   user, bpftrace alongside, and writes its artifacts to that disk, then powers off;
4. unpack the artifacts into `<run dir>/<distro>/` (with QEMU's console.log), judge them
   (`collect.py`), record the outcome in the history;
5. destroy the clone, unless `keep` says otherwise (then say how to reach it).
The seed, the SSH key (unless kept) and the results disk live in the distro's `.work`
directory, which is removed whatever happened; QEMU is stopped by `Machine` on every path,
Ctrl-C included.  Afterwards the run directory gets the matrix, summary.md and junit.xml.

Everything runs in one asyncio loop: Ctrl-C cancels every distro at once and each one's
`finally` still destroys its clone.  Store calls are serialised (they take the store lock
anyway) and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from imagefactory.errors import ImageFactoryError
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Clone, Golden, Store
from imagefactory.store.select import open_store
from imagefactory.testrun import artifacts as paths
from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.bpftrace_files import with_bpf_scripts
from imagefactory.testrun.bpftrace_option import scripts_for
from imagefactory.testrun.collect import GoldenFacts, Judged, Judging, judge
from imagefactory.testrun.guest import runner_plan
from imagefactory.testrun.history import History, new_run_id
from imagefactory.testrun.jobs import resolve_jobs
from imagefactory.testrun.kept import KeptClone, keep_clone
from imagefactory.testrun.matrix import summary_line
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus, stage_exit_status
from imagefactory.testrun.resolve import DistroTests, StagePlan, check_selection, plan_distros
from imagefactory.testrun.results_disk import (
    DEFAULT_SIZE,
    SERIAL,
    ResultsDiskError,
    create_results_disk,
    extract_results,
)
from imagefactory.testrun.run_files import write_run_files
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.watch import ConsoleWatch
from imagefactory.vm.accel import AccelChoice, select_accel
from imagefactory.vm.firmware import UefiFirmware, find_uefi_firmware
from imagefactory.vm.fromspec import vm_config
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.provision import ProvisionResult, provision_async
from imagefactory.vm.qemu_args import ExtraDisk, VmConfig
from imagefactory.vm.seed import SshKeyPair, build_seed, generate_ssh_key, hostname_for
from imagefactory.vm.userdata import resolve_fragments

log = structlog.get_logger(__name__)

T = TypeVar("T")
KeepPolicy = Literal["never", "failed", "always"]

BOOT_ALLOWANCE = 1800.0
"""Seconds for the clone to boot and cloud-init to start the runner (TCG on a busy host)."""
POWEROFF_ALLOWANCE = 300.0
WORK_DIR = ".work"


@dataclass(frozen=True)
class StageOptions:
    store: str | None = None
    jobs: int | None = None
    keep: KeepPolicy = "never"
    timeout: float | None = None
    """Seconds for the tests in each clone; default: the spec's test.timeout."""
    accel: str = "auto"
    boot_allowance: float = BOOT_ALLOWANCE
    results_disk_size: int = DEFAULT_SIZE
    run_id: str | None = None
    history: Path | None = None
    runs_root: Path | None = None
    qemu: str = "qemu-system-x86_64"
    command: tuple[str, ...] = ()
    retries: int = 0
    """Reruns of each FAIL/KILLED test (or failing recipe) in the clone, within the timeout."""
    baseline: Baseline | None = None
    """Known failures and flakes to judge against (testrun/baseline.py); None: raw results."""
    bpf: tuple[str, ...] | None = None
    """bpftrace scripts run alongside (--bpf; testrun/bpftrace_option.py); None: the default."""


@dataclass
class StageResult:
    run_id: str
    run_dir: Path
    selection: Selection
    outcomes: list[DistroOutcome]
    kept: list[KeptClone] = field(default_factory=list)
    exit_status: int = 0
    files: dict[str, Path] = field(default_factory=dict)


def random_mac() -> str:
    """A MAC in QEMU's 52:54:00 range, new for every clone (the network config binds to it)."""
    tail = secrets.token_bytes(3)
    return "52:54:00:" + ":".join(f"{b:02x}" for b in tail)


def not_built(resolved: ResolvedSpec, store: Store) -> DistroOutcome:
    name = resolved.spec.name
    return DistroOutcome.failed_infrastructure(
        name,
        f"no ztest golden {resolved.golden_leaf} in {store.spec}; "
        f"build it with `make golden-ztest DISTRO={name}`",
        not_built=True,
    )


@dataclass
class BootFiles:
    """One clone's boot: the files it needs, all under the distro's .work directory."""

    config: VmConfig
    plan: HookPlan
    results_disk: Path
    ssh_key: SshKeyPair
    mac: str
    uefi: UefiFirmware | None


class Stage:
    """One run over several distros; `run_async()` returns when every clone is gone."""

    def __init__(
        self,
        specs: Sequence[ResolvedSpec],
        selection: Selection,
        options: StageOptions,
        store: Store,
        *,
        on_outcome: Callable[[Judged], None] | None = None,
        preset: Mapping[str, DistroOutcome] | None = None,
        report: Callable[[str], None] | None = None,
        plan: StagePlan | None = None,
    ) -> None:
        self.specs = list(specs)
        self.report = report
        self.plan = plan
        """Goldens and resolved tests decided before the stage; None: looked up per distro."""
        self.preset = dict(preset or {})
        self.selection = selection
        self.options = options
        self.store = store
        self.run_id = options.run_id or new_run_id()
        self.run_dir = paths.run_dir(self.run_id, options.runs_root)
        self.kept: list[KeptClone] = []
        self.on_outcome = on_outcome
        self._store_lock: asyncio.Lock | None = None
        self._accel: dict[str, AccelChoice] = {}

    # -- helpers ---------------------------------------------------------------------------

    async def _store_call(self, func: Callable[..., T], *args: Any) -> T:
        assert self._store_lock is not None
        async with self._store_lock:
            return await asyncio.to_thread(func, *args)

    def _accel_for(self, cpu_model: str) -> AccelChoice:
        if cpu_model not in self._accel:
            self._accel[cpu_model] = select_accel(
                self.options.accel,  # type: ignore[arg-type]
                qemu=self.options.qemu,
                cpu_model=cpu_model,
            )
        return self._accel[cpu_model]

    def timeout_for(self, resolved: ResolvedSpec) -> float:
        if self.options.timeout is not None:
            return self.options.timeout
        return float(resolved.spec.test.timeout)

    def prepare(self, resolved: ResolvedSpec, clone: Clone, work: Path) -> BootFiles:
        """The seed, SSH key, results disk and QEMU configuration of one clone's boot."""
        spec = resolved.spec
        work.mkdir(parents=True, exist_ok=True)
        suffix = clone.clone_id.rsplit("-", 1)[-1]
        name = hostname_for(f"{spec.name}-t{suffix}")
        key = generate_ssh_key(work / "ssh", f"klab-test-{name}")
        # An empty comment tells the guest runner not to remove the key when the hooks are
        # done: a kept clone stays reachable with it (and a destroyed one takes it along).
        seed_key = dataclasses.replace(key, comment="")
        mac = random_mac()
        tests = self.plan.for_distro(spec.name) if self.plan else DistroTests(None)
        plan = runner_plan(
            resolved,
            self.selection,
            self.timeout_for(resolved),
            tests=tests.tests,
            absent=tests.absent,
            retries=self.options.retries,
        )
        accel_name = self._accel_for(spec.vm.cpu_model).accel  # --bpf's default depends on it
        plan = with_bpf_scripts(plan, scripts_for(self.options.bpf, accel_name))
        seed = build_seed(
            name=name,
            default_user=spec.cloud_init.default_user.name,
            sudo=spec.cloud_init.default_user.sudo,
            key=seed_key,
            hooks=plan,
            fragments=resolve_fragments(spec.cloud_init.fragments),
            mac=mac,
            poweroff=True,
        )
        iso = work / "seed.iso"
        seed.write_iso(iso)
        disk = create_results_disk(work / "results.img", self.options.results_disk_size)
        accel = self._accel_for(spec.vm.cpu_model)
        config = vm_config(
            spec,
            disk=clone.path,
            disk_format=clone.format,
            seed=iso,
            accel=accel.accel,
            name=f"{resolved.golden_leaf}-test-{clone.clone_id}",
            mac=mac,
        )
        hook_time = sum(h.timeout for h in plan.hooks)
        config = dataclasses.replace(
            config,
            extra_disks=(ExtraDisk(disk, serial=SERIAL),),
            boot_timeout=self.options.boot_allowance + hook_time + POWEROFF_ALLOWANCE,
        )
        uefi = find_uefi_firmware(spec.vm.machine) if spec.vm.firmware == "uefi" else None
        return BootFiles(config, plan, disk, key, mac, uefi)

    # -- one distro ------------------------------------------------------------------------

    async def _provision_watched(
        self, name: str, boot: BootFiles, artifacts: Path
    ) -> ProvisionResult:
        """Boot and run the hook; stop early when the runner never starts (BootStalled)."""
        watch = ConsoleWatch(
            artifacts / "console.log",
            name,
            boot_allowance=self.options.boot_allowance,
            report=self.report,
        )
        provisioning = asyncio.create_task(
            provision_async(
                boot.config, boot.plan, log_dir=artifacts, qemu=self.options.qemu, uefi=boot.uefi
            )
        )
        watching = asyncio.create_task(watch.run())
        try:
            await asyncio.wait({provisioning, watching}, return_when=asyncio.FIRST_COMPLETED)
            if not provisioning.done():
                watching.result()  # raises BootStalled; `finally` stops the VM
            return provisioning.result()
        finally:
            for task in (watching, provisioning):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def _boot_and_judge(
        self, resolved: ResolvedSpec, boot: BootFiles, artifacts: Path, facts: GoldenFacts
    ) -> Judged:
        name = resolved.spec.name
        log.info("test.boot", distro=name, vm=boot.config.name, accel=boot.config.accel)
        result = await self._provision_watched(name, boot, artifacts)
        (artifacts / "hooks.txt").write_text(result.report() + "\n", encoding="utf-8")
        hook_seconds = result.hooks[0].seconds if result.hooks else None
        try:
            await asyncio.to_thread(extract_results, boot.results_disk, artifacts)
        except ResultsDiskError as exc:
            vm = "" if result.ok else f"; the VM: {result.summary().splitlines()[0]}"
            return Judged(
                DistroOutcome.failed_infrastructure(
                    name,
                    f"{exc}{vm}",
                    duration_s=hook_seconds,
                    golden_build_id=facts.build_id,
                    zfs_version=facts.zfs_version,
                    suite_version=facts.suite_version,
                    artifacts_dir=str(artifacts),
                )
            )
        bpf = scripts_for(self.options.bpf, boot.config.accel)
        judging = Judging(self.options.baseline, boot.config.accel, bpf)
        judged = await asyncio.to_thread(
            judge, name, artifacts, self.selection, facts, duration=hook_seconds, judging=judging
        )
        if not result.ok:
            note = f"the VM: {result.summary().splitlines()[0]}"
            outcome = judged.outcome
            outcome.message = f"{outcome.message}; {note}" if outcome.message else note
        return judged

    def _keep(self, outcome: DistroOutcome | None) -> bool:
        if outcome is None:
            return False  # interrupted: nothing worth keeping was produced
        if self.options.keep == "always":
            return True
        return self.options.keep == "failed" and outcome.status is not DistroStatus.PASSED

    def _record_kept(
        self, resolved: ResolvedSpec, clone: Clone, boot: BootFiles | None, artifacts: Path
    ) -> None:
        kept = keep_clone(
            resolved.spec,
            self.store.spec,
            clone,
            artifacts,
            ssh_key=boot.ssh_key.private_key if boot is not None else None,
            mac=boot.mac if boot is not None else None,
            uefi=boot.uefi if boot is not None else None,
            accel=boot.config.accel if boot is not None else None,
        )
        self.kept.append(kept)

    async def run_one(self, resolved: ResolvedSpec) -> Judged:
        spec = resolved.spec
        if spec.name in self.preset:
            return Judged(self.preset[spec.name])
        golden: Golden | None
        if self.plan is not None:
            golden = self.plan.goldens.get(spec.name)
        else:
            golden = await self._store_call(self.store.get_golden, resolved.golden_leaf)
        if golden is None:
            return Judged(not_built(resolved, self.store))
        prov = golden.provenance
        facts = GoldenFacts(prov.build_id, prov.zfs_version, prov.suite_version)
        artifacts = paths.distro_dir(self.run_dir, spec.name)
        artifacts.mkdir(parents=True, exist_ok=True)
        work = artifacts / WORK_DIR
        started = time.monotonic()
        clone: Clone | None = None
        boot: BootFiles | None = None
        judged: Judged | None = None
        try:
            clone = await self._store_call(self.store.clone, resolved.golden_leaf)
            log.info("test.cloned", distro=spec.name, clone=clone.name, golden=golden.name)
            boot = await asyncio.to_thread(self.prepare, resolved, clone, work)
            judged = await self._boot_and_judge(resolved, boot, artifacts, facts)
        except (ImageFactoryError, OSError) as exc:
            # OSError: the host's side failed (disk full, permissions), not the tests.
            log.error("test.infrastructure", distro=spec.name, error=str(exc))
            judged = Judged(
                DistroOutcome.failed_infrastructure(
                    spec.name,
                    str(exc).splitlines()[0],
                    duration_s=time.monotonic() - started,
                    golden_build_id=facts.build_id,
                    zfs_version=facts.zfs_version,
                    suite_version=facts.suite_version,
                    artifacts_dir=str(artifacts),
                )
            )
        finally:
            outcome = judged.outcome if judged is not None else None
            if clone is not None:
                if self._keep(outcome):
                    self._record_kept(resolved, clone, boot, artifacts)
                else:
                    self._destroy(clone, outcome)
            shutil.rmtree(work, ignore_errors=True)
        return judged

    def _destroy(self, clone: Clone, outcome: DistroOutcome | None) -> None:
        """Synchronous on purpose: it must also run while the task is being cancelled."""
        try:
            self.store.destroy_clone(clone)
        except ImageFactoryError as exc:
            log.error("test.clone.leak", clone=clone.name, error=str(exc))
            if outcome is not None:
                note = f"the clone {clone.name} could not be destroyed: {exc}"
                outcome.message = f"{outcome.message}; {note}" if outcome.message else note
                if outcome.status is DistroStatus.PASSED:
                    outcome.status = DistroStatus.INFRA_ERROR

    # -- all distros -----------------------------------------------------------------------

    async def run_async(self, jobs: int) -> list[Judged]:
        self._store_lock = asyncio.Lock()
        gate = asyncio.Semaphore(jobs)

        async def one(resolved: ResolvedSpec) -> Judged:
            async with gate:
                judged = await self.run_one(resolved)
            if self.on_outcome is not None:
                self.on_outcome(judged)
            return judged

        return list(await asyncio.gather(*(one(r) for r in self.specs)))


def run_stage(
    specs: Sequence[ResolvedSpec],
    selection: Selection,
    options: StageOptions,
    *,
    store: Store | None = None,
    report: Callable[[str], None] | None = None,
    preset: Mapping[str, DistroOutcome] | None = None,
) -> StageResult:
    """Run `selection` on every spec's ztest golden; record, write the run files, judge.

    `preset` gives outcomes decided before the stage (a distro whose rebuild failed):
    those distros are not tested but still recorded, in the matrix and in the exit status.
    """
    check_selection(specs, selection)
    store = store if store is not None else open_store(options.store)
    preset = dict(preset or {})
    plan = plan_distros(specs, selection, store, skip=preset)
    for warning in plan.warnings:
        log.warning("test.no_inventory", warning=warning)
        if report is not None:
            report(f"warning: {warning}")
    preset.update(plan.unbooted())
    jobs = resolve_jobs(options.jobs, [r.spec for r in specs])
    history = History.open(options.history)
    try:

        def recorded(judged: Judged) -> None:
            history.record_outcome(
                stage.run_id, judged.outcome, log_paths=judged.log_paths, lineage="ztest"
            )
            if report is not None:
                report(summary_line(judged.outcome))

        stage = Stage(
            specs,
            selection,
            options,
            store,
            on_outcome=recorded,
            preset=preset,
            report=report,
            plan=plan,
        )
        stage.run_dir.mkdir(parents=True, exist_ok=True)
        history.start_run(
            stage.run_id,
            selection=selection.canonical,
            command=list(options.command) or ["klab", "test"],
        )
        log.info(
            "test.run",
            run_id=stage.run_id,
            selection=selection.canonical,
            distros=[r.spec.name for r in specs],
            jobs=jobs,
            run_dir=str(stage.run_dir),
        )
        try:
            judged = asyncio.run(stage.run_async(jobs))
        finally:
            history.finish_run(stage.run_id)
        timing = history.timing_section(stage.run_id)  # summary.md's "Timing" (history/trends)
    finally:
        history.close()
    outcomes = [j.outcome for j in judged]
    empty = bool(judged) and all(j.selection_empty for j in judged)
    files = write_run_files(
        stage.run_dir, stage.run_id, selection, outcomes, baseline=options.baseline, timing=timing
    )
    return StageResult(
        run_id=stage.run_id,
        run_dir=stage.run_dir,
        selection=selection,
        outcomes=outcomes,
        kept=stage.kept,
        exit_status=stage_exit_status(outcomes, usage_error=empty),
        files=files,
    )
