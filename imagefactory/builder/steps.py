"""Steps with paired cleanups, run in order; one runner decides between cleanup and abort.

The Packer multistep idea: each stage is a small object that knows how to do its job and
how to undo it.  Stages never decide what happens after a failure — the runner does: with
`cleanup` every finished step is undone in reverse order; with `abort` the work is kept
(stopped VM, build volume, logs) for debugging and the runner says where it is.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Generic, Literal, Protocol, TypeVar

import structlog

from imagefactory.errors import ImageFactoryError

log = structlog.get_logger(__name__)

OnError = Literal["cleanup", "abort"]
Ctx = TypeVar("Ctx", contravariant=True)
C = TypeVar("C")


class Step(Protocol[Ctx]):
    """One pipeline stage: `run` does the work, `cleanup` undoes it after a later failure."""

    name: str

    def run(self, ctx: Ctx) -> None: ...

    def cleanup(self, ctx: Ctx) -> None: ...


class Terminated(ImageFactoryError):
    """The build was asked to stop (SIGTERM/SIGHUP); treated like a failure of the current step."""

    exit_status = 143


@dataclass
class StepTiming:
    name: str
    seconds: float
    status: Literal["done", "skipped", "failed"]


@dataclass
class RunReport:
    timings: list[StepTiming] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings)


class StepSkipped(Exception):
    """Raised by a step's run() when its marker shows the work is already done."""


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` so cleanups run as they do on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Terminated(f"stopped by signal {signal.Signals(signum).name}")

    if threading.current_thread() is not threading.main_thread():
        yield  # parallel builds: the main thread owns signals and stops the workers
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class StepRunner(Generic[C]):
    """Runs steps in order; on failure runs the finished steps' cleanups in reverse order."""

    steps: Sequence[Step[C]]
    on_error: OnError = "cleanup"
    report: RunReport = field(default_factory=RunReport)
    on_step: Callable[[str], None] | None = None

    def run(self, ctx: C) -> RunReport:
        done: list[Step[C]] = []
        with terminate_as_exception():
            try:
                for step in self.steps:
                    started = time.monotonic()
                    log.info("step.start", step=step.name)
                    if self.on_step is not None:
                        self.on_step(step.name)
                    try:
                        step.run(ctx)
                    except StepSkipped as skip:
                        elapsed = time.monotonic() - started
                        self.report.timings.append(StepTiming(step.name, elapsed, "skipped"))
                        log.info("step.skipped", step=step.name, reason=str(skip))
                        done.append(step)
                        continue
                    except BaseException:
                        elapsed = time.monotonic() - started
                        self.report.timings.append(StepTiming(step.name, elapsed, "failed"))
                        # A step that failed halfway still owns what it made: include it.
                        done.append(step)
                        raise
                    elapsed = time.monotonic() - started
                    self.report.timings.append(StepTiming(step.name, elapsed, "done"))
                    log.info("step.done", step=step.name, seconds=round(elapsed, 2))
                    done.append(step)
            except BaseException as exc:
                log.error("build.failed", step=done[-1].name if done else None, error=str(exc))
                if self.on_error == "cleanup":
                    self._cleanup(ctx, done)
                else:
                    log.warning("build.aborted.kept", steps=[s.name for s in done])
                raise
        return self.report

    def _cleanup(self, ctx: C, done: list[Step[C]]) -> None:
        # Cleanups must run even if Ctrl-C arrives again: ignore SIGINT while they run.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for step in reversed(done):
                try:
                    step.cleanup(ctx)
                    log.info("step.cleanup", step=step.name)
                except Exception as exc:  # one failed cleanup must not stop the others
                    log.error("step.cleanup.failed", step=step.name, error=str(exc))
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
