"""One clone's part of a distro: boot after boot, a fresh clone after each crash.

The stage (stage.py) runs a distro's parts at once (`--clones`); each part runs here on the
build's step runner (clone_steps.py), one boot at a time.  A boot that ends with
`GuestCrashed` (watch.py: a kernel crash line, QEMU's pvpanic exit, or no test finished for
`--hang-timeout`) becomes a judged piece read from its console (crash.py, clones.py), and
its unfinished tests go to a fresh clone -- at most `--crash-retries` times; what is still
left then is KILLED ("not run"), never dropped.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from imagefactory.builder.steps import AsyncStepRunner
from imagefactory.errors import ImageFactoryError
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Golden
from imagefactory.testrun.clone_steps import CloneRun, clone_steps
from imagefactory.testrun.clones import Resume, crashed_piece, piece_dir, unrun
from imagefactory.testrun.collect import GoldenFacts, Judged, Judging
from imagefactory.testrun.crash import read_console
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.resolve import DistroTests
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.watch import GuestCrashed

if TYPE_CHECKING:
    from imagefactory.testrun.stage import Stage

log = structlog.get_logger(__name__)


def _failed(ctx: CloneRun) -> bool:
    return ctx.failed


def _console_text(path: Path) -> str:
    """The console as text; empty when QEMU never wrote one."""
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


async def run_part(
    stage: Stage,
    resolved: ResolvedSpec,
    golden: Golden,
    facts: GoldenFacts,
    base: Path,
    clone: int,
    clones: int,
    tests: DistroTests | None,
) -> list[tuple[str, Path, Judged]]:
    """One clone's part, in fresh clones after each crash (at most --crash-retries)."""
    name = resolved.spec.name
    selection: Selection | None = None
    pieces: list[tuple[str, Path, Judged]] = []
    resume: Resume | None = None
    retries = stage.options.crash_retries
    for boot in range(1, retries + 2):
        artifacts = piece_dir(base, clone, clones, boot)
        label = f"clone {clone}/{clones}" if clones > 1 else "clone"
        label += f" boot {boot}" if boot > 1 else ""
        ctx = CloneRun(
            resolved,
            golden,
            facts,
            artifacts,
            tests=tests,
            selection=selection,
            cpus=stage.cpus,
        )
        judged, resume = await boot_once(stage, ctx)
        pieces.append((label, artifacts, judged))
        if resume is None:
            return pieces
        tests, selection = resume.tests, resume.selection
        if boot <= retries and stage.report is not None:
            stage.report(
                f"{name}: {label}: {judged.outcome.message}; the rest goes on in a fresh clone"
            )
    assert resume is not None
    left = unrun(resume, retries)
    if left:
        outcome = DistroOutcome.from_tests(
            name,
            left,
            **facts.outcome_fields(),
            artifacts_dir=str(base),
            baseline=stage.options.baseline,
        )
        outcome.message = f"{len(left)} test(s) not run: --crash-retries {retries} used up"
        pieces.append((f"{label} rest", base, Judged(outcome)))
    return pieces


async def boot_once(stage: Stage, ctx: CloneRun) -> tuple[Judged, Resume | None]:
    """One boot on the step runner: its judged piece, and the resume after a crash."""
    spec = ctx.resolved.spec
    facts, artifacts = ctx.facts, ctx.artifacts
    artifacts.mkdir(parents=True, exist_ok=True)
    runner: AsyncStepRunner[CloneRun] = AsyncStepRunner(
        clone_steps(stage), keep=stage.keep_policy, failed=_failed
    )
    started = time.monotonic()
    resume: Resume | None = None
    try:
        await runner.run(ctx)
    except GuestCrashed as exc:
        # The clone is gone (or kept); its console is the evidence (crash.py).
        log.error("test.crashed", distro=spec.name, error=str(exc), artifacts=str(artifacts))
        console = artifacts / "console.log"
        text = await asyncio.to_thread(_console_text, console)
        accel = ctx.boot.config.accel if ctx.boot is not None else None
        tests = ctx.tests
        if tests is None:
            tests = stage.plan.for_distro(spec.name) if stage.plan else DistroTests(None)
        ctx.judged, resume = crashed_piece(
            spec.name,
            artifacts,
            read_console(text),
            str(exc),
            tests=tests,
            selection=ctx.selection or stage.selection,
            facts=facts,
            judging=Judging(stage.options.baseline, accel),
        )
        if ctx.judged.outcome.duration_s is None:
            ctx.judged.outcome.duration_s = time.monotonic() - started
    except (ImageFactoryError, OSError) as exc:
        # OSError: the host's side failed (disk full, permissions), not the tests.
        log.error("test.infrastructure", distro=spec.name, error=str(exc))
        ctx.judged = Judged(
            DistroOutcome.failed_infrastructure(
                spec.name,
                str(exc).splitlines()[0],
                duration_s=time.monotonic() - started,
                **facts.outcome_fields(),
                artifacts_dir=str(artifacts),
            )
        )
    judged = ctx.judged
    assert judged is not None, "the collect step judges every run that ends without error"
    if ctx.leak is not None:
        outcome = judged.outcome
        outcome.message = f"{outcome.message}; {ctx.leak}" if outcome.message else ctx.leak
        if outcome.status is DistroStatus.PASSED:
            outcome.status = DistroStatus.INFRA_ERROR
    return judged, resume
