"""The test stage: each distro's ztest golden → clone → own seed → boot → run → judge.

For every distro, in parallel as far as the host allows (`jobs`):
1. resolve the current ztest golden; none is "not built" (an infrastructure error naming
   `make golden-ztest DISTRO=...`), never a crash;
2. run the distro's steps (`clone_steps.py`) on the build's step runner: clone the golden
   (qcow2 overlay or zvol clone); give the clone its own seed from the spec-to-boot adapter
   (vm/fromspec.py) -- a new instance-id, host name, MAC and SSH key, and the one hook that
   runs the tests (hooks/testrun/50-klab-test.sh, see `guest.py`); boot it with a raw
   results disk attached (the guest runs the selection as the test user, bpftrace
   alongside, writes its artifacts to that disk, then powers off); unpack the artifacts
   into `<run dir>/<distro>/` (with QEMU's console.log) and judge them (`collect.py`);
3. when the steps end, the runner destroys the clone unless `keep` says otherwise (then it
   says how to reach it) and removes the distro's `.work` directory (seed, SSH key,
   results disk) whatever happened; QEMU is stopped by `Machine` on every path;
4. record the outcome in the history.
Afterwards the run directory gets the matrix, summary.md and junit.xml.

A distro may take several boots (clones.py): `--clones K` splits its selection over K
clones that run at once (the VM budget sizes distros x clones: budget.py), and a clone
whose guest crashes or hangs hands its unfinished tests to a fresh clone, up to
`--crash-retries` times; the boots' pieces merge into the distro's one outcome.

Everything runs in one asyncio loop: Ctrl-C cancels every distro at once and each one's
runner still destroys its clone.  Store calls are serialised (they take the store lock
anyway) and run in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import structlog

from imagefactory.builder.steps import Keep
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Clone, Golden, Store
from imagefactory.store.select import open_store
from imagefactory.testrun import artifacts as paths
from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.bpftrace_files import with_bpf_scripts
from imagefactory.testrun.bpftrace_option import scripts_for
from imagefactory.testrun.budget import VmBudget, vm_budget
from imagefactory.testrun.clone_steps import (
    BootFiles,
    clone_vm_name,
    random_mac,
)
from imagefactory.testrun.clones import (
    clone_splits,
    merge_pieces,
    part_tests,
)
from imagefactory.testrun.collect import GoldenFacts, Judged
from imagefactory.testrun.durations import Durations
from imagefactory.testrun.guest import runner_hook
from imagefactory.testrun.history import History, new_run_id
from imagefactory.testrun.kept import KeptClone
from imagefactory.testrun.matrix import summary_line
from imagefactory.testrun.outcome import DistroOutcome, stage_exit_status
from imagefactory.testrun.part_run import run_part
from imagefactory.testrun.resolve import (
    DistroTests,
    StagePlan,
    check_selection,
    inventories_of,
    plan_distros,
)
from imagefactory.testrun.results_disk import DEFAULT_SIZE, SERIAL, create_results_disk
from imagefactory.testrun.run_files import write_run_files
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.watch import CRASH_GRACE, HANG_TIMEOUT
from imagefactory.vm.accel import AccelChoice, AccelRequest, select_accel
from imagefactory.vm.fromspec import seed_files, uefi_firmware, vm_config
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.qemu_args import Accel, ExtraDisk
from imagefactory.vm.seed import generate_ssh_key, hostname_for

log = structlog.get_logger(__name__)

T = TypeVar("T")
KeepPolicy = Literal["never", "failed", "always"]

BOOT_ALLOWANCE = 1800.0
"""Seconds for the clone to boot and cloud-init to start the runner (TCG on a busy host)."""
POWEROFF_ALLOWANCE = 300.0
KEEP_POLICIES: dict[KeepPolicy, Keep] = {
    "never": Keep(),
    "failed": Keep(failed=True),
    "always": Keep(failed=True, succeeded=True),
}
"""`--keep` as the runner's keep policy; an interrupted run (Ctrl-C) keeps nothing."""


@dataclass(frozen=True)
class StageOptions:
    store: str | None = None
    jobs: int | None = None
    keep: KeepPolicy = "never"
    timeout: float | None = None
    """Seconds for the tests in each clone; default: the spec's test.timeout."""
    accel: AccelRequest = "auto"
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
    clones: int | None = None
    """Clones per distro (--clones); None: what the VM budget leaves (budget.py)."""
    durations: Durations | None = None
    """What the clones' split is weighed with; None: no recorded times (split by count)."""
    hang_timeout: float = HANG_TIMEOUT
    """Seconds without a finished test before a clone is stopped as hung (--hang-timeout)."""
    crash_retries: int = 2
    """Fresh clones for the rest of a part after its guest crashed (--crash-retries)."""
    crash_grace: float = CRASH_GRACE
    """Seconds from a crash line to stopping the VM (the trace reaches the console first)."""


@dataclass
class StageResult:
    run_id: str
    run_dir: Path
    selection: Selection
    outcomes: list[DistroOutcome]
    kept: list[KeptClone] = field(default_factory=list)
    exit_status: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    wall_s: float | None = None
    """The run's wall-clock time, clones to judgement (the matrix's `total wall:`)."""


def not_built(resolved: ResolvedSpec, store: Store) -> DistroOutcome:
    name = resolved.spec.name
    return DistroOutcome.failed_infrastructure(
        name,
        f"no ztest golden {resolved.golden_leaf} in {store.spec}; "
        f"build it with `make golden-ztest DISTRO={name}`",
        not_built=True,
    )


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
        self.parts: dict[str, tuple[DistroTests, ...]] = {}
        """Each split distro's clones' tests (clones.py); absent: one clone."""
        self.cpus: int | None = None
        """Each VM's vCPU share when several share the host (budget.py); None: the spec's."""

    # -- helpers (the steps in clone_steps.py use them) ------------------------------------

    @property
    def keep_policy(self) -> Keep:
        return KEEP_POLICIES[self.options.keep]

    async def store_call(self, func: Callable[..., T], *args: Any) -> T:
        assert self._store_lock is not None
        async with self._store_lock:
            return await asyncio.to_thread(func, *args)

    def _accel_for(self, cpu_model: str) -> AccelChoice:
        if cpu_model not in self._accel:
            self._accel[cpu_model] = select_accel(
                self.options.accel, qemu=self.options.qemu, cpu_model=cpu_model
            )
        return self._accel[cpu_model]

    def known_accel(self, cpu_model: str) -> Accel:
        """The accelerator chosen for this CPU model so far, without probing (TCG if none)."""
        choice = self._accel.get(cpu_model)
        return choice.accel if choice is not None else "tcg"

    def timeout_for(self, resolved: ResolvedSpec) -> float:
        if self.options.timeout is not None:
            return self.options.timeout
        return float(resolved.spec.test.timeout)

    def prepare(
        self,
        resolved: ResolvedSpec,
        clone: Clone,
        work: Path,
        *,
        tests: DistroTests | None = None,
        selection: Selection | None = None,
        cpus: int | None = None,
    ) -> BootFiles:
        """The seed, SSH key, results disk and QEMU configuration of one clone's boot.

        `tests`, `selection`: this boot's (a clone's part, a resume); default the plan's."""
        spec = resolved.spec
        selection = selection or self.selection
        work.mkdir(parents=True, exist_ok=True)
        suffix = clone.clone_id.rsplit("-", 1)[-1]
        name = hostname_for(f"{spec.name}-t{suffix}")
        key = generate_ssh_key(work / "ssh", f"klab-test-{name}")
        # An empty comment tells the guest runner not to remove the key when the hooks are
        # done: a kept clone stays reachable with it (and a destroyed one takes it along).
        seed_key = dataclasses.replace(key, comment="")
        mac = random_mac()
        if tests is None:
            tests = self.plan.for_distro(spec.name) if self.plan else DistroTests(None)
        hook = runner_hook(
            resolved,
            selection,
            self.timeout_for(resolved),
            tests=tests.tests,
            absent=tests.absent,
            retries=self.options.retries,
        )
        plan = HookPlan.of([hook])
        accel = self._accel_for(spec.vm.cpu_model).accel
        plan = with_bpf_scripts(plan, scripts_for(self.options.bpf))
        iso = work / "seed.iso"
        seed_files(spec, plan, seed_key, name=name, mac=mac).write_iso(iso)
        disk = create_results_disk(work / "results.img", self.options.results_disk_size)
        hook_time = sum(h.timeout for h in plan.hooks)
        config = vm_config(
            spec,
            disk=clone.path,
            disk_format=clone.format,
            seed=iso,
            accel=accel,
            name=clone_vm_name(resolved, clone),
            mac=mac,
            extra_disks=(ExtraDisk(disk, serial=SERIAL),),
            boot_timeout=self.options.boot_allowance + hook_time + POWEROFF_ALLOWANCE,
        )
        if cpus is not None and cpus < config.cpus:  # the VM budget's share (budget.py)
            config = dataclasses.replace(config, cpus=cpus)
        return BootFiles(config, plan, disk, key, uefi_firmware(spec))

    def size(self) -> VmBudget:
        """Distros at once and clones each from the host's VM budget; splits the distros
        that take several clones (`parts`) and sets the clones' vCPUs."""
        specs = [r.spec for r in self.specs if r.spec.name not in self.preset]
        # Only distros that boot count, and only they need the accelerator probed.
        accel = self._accel_for(specs[0].vm.cpu_model).accel if specs else "tcg"
        budget = vm_budget(specs, jobs=self.options.jobs, clones=self.options.clones, accel=accel)
        if budget.warning is not None:
            log.warning("test.budget", warning=budget.warning)
            if self.report is not None:
                self.report(f"warning: {budget.warning}")
        if budget.clones > 1 and self.plan is not None:
            inventories, _ = inventories_of(
                {d: g for d, g in self.plan.goldens.items() if d not in self.preset}
            )
            durations = self.options.durations or Durations(source="no history")
            splits = clone_splits(self.plan, self.selection, inventories, durations, budget.clones)
            self.parts = {d: part_tests(split) for d, split in splits.items()}
        clones = max((len(p) for p in self.parts.values()), default=1)
        self.cpus = budget.share(budget.jobs * clones)  # the VMs that will really run
        return budget

    # -- one distro ------------------------------------------------------------------------

    async def run_one(self, resolved: ResolvedSpec) -> Judged:
        spec = resolved.spec
        if spec.name in self.preset:
            return Judged(self.preset[spec.name])
        golden: Golden | None
        if self.plan is not None:
            golden = self.plan.goldens.get(spec.name)
        else:
            golden = await self.store_call(self.store.get_golden, resolved.golden_leaf)
        if golden is None:
            return Judged(not_built(resolved, self.store))
        prov = golden.provenance
        facts = GoldenFacts(prov.build_id, prov.zfs_version, prov.suite_version)
        base = paths.distro_dir(self.run_dir, spec.name)
        parts: tuple[DistroTests | None, ...] = self.parts.get(spec.name) or (None,)
        runs = [
            run_part(self, resolved, golden, facts, base, k, len(parts), tests)
            for k, tests in enumerate(parts, 1)
        ]
        pieces = [piece for part in await asyncio.gather(*runs) for piece in part]
        return merge_pieces(spec.name, pieces, base)

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
        budget = stage.size()
        jobs = budget.jobs
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
            clones={d: len(p) for d, p in stage.parts.items()},
            cpus=stage.cpus,
            run_dir=str(stage.run_dir),
        )
        began = time.monotonic()
        try:
            judged = asyncio.run(stage.run_async(jobs))
        finally:
            history.finish_run(stage.run_id)
        wall_s = time.monotonic() - began
        timing = history.timing_section(stage.run_id)  # summary.md's "Timing" (history/trends)
    finally:
        history.close()
    outcomes = [j.outcome for j in judged]
    empty = bool(judged) and all(j.selection_empty for j in judged)
    files = write_run_files(
        stage.run_dir,
        stage.run_id,
        selection,
        outcomes,
        baseline=options.baseline,
        timing=timing,
        history=options.history,  # report.html's trends
        wall_s=wall_s,
    )
    return StageResult(
        run_id=stage.run_id,
        run_dir=stage.run_dir,
        selection=selection,
        outcomes=outcomes,
        kept=stage.kept,
        exit_status=stage_exit_status(outcomes, usage_error=empty),
        files=files,
        wall_s=wall_s,
    )
