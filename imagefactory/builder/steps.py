"""Steps with paired cleanups, run in order; one runner decides what stays afterwards.

The Packer multistep idea: each stage is a small object that knows how to do its job and
how to undo it.  Stages never decide what happens after a run -- the runner does.  When a
run ends, on success and on failure alike, every step that started is finished off in
reverse order:

- `cleanup(ctx)` releases what only the run needs (a private key, a work directory, a
  volume that was never published).  It is called unless the run keeps its work.
- A step whose output must outlive a kept run says so by having `keep(ctx)`: when the run
  keeps its work (`Keep`: a failed build under `--on-error abort`, a test clone under
  `--keep`), the runner calls `keep` instead of `cleanup` (hand the output over, say where
  it is).  A step without `keep` is cleaned up either way.

The build runs its steps synchronously (`StepRunner`); the test stage's steps await a VM
and the store (`AsyncStepRunner`); both share the bookkeeping and the ending.

A step may also have a `key(ctx)`, the identity of its output, and `restore(ctx, key)`, which
takes the output cached under that key: the runner then skips the step (`cached`).  A step
without a key, or with a key that has nothing cached, runs.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Generic, Literal, Protocol, TypeVar

import structlog

from imagefactory.errors import ImageFactoryError

log = structlog.get_logger(__name__)

OnError = Literal["cleanup", "abort"]
Ctx = TypeVar("Ctx", contravariant=True)
C = TypeVar("C")
S = TypeVar("S", bound="Finishable[Any]")


class Finishable(Protocol[Ctx]):
    """What the runner needs to end a run: a name and a cleanup (`keep` is optional)."""

    name: str

    def cleanup(self, ctx: Ctx) -> None: ...


class Step(Finishable[Ctx], Protocol[Ctx]):
    """One pipeline stage: `run` does the work, `cleanup` releases it when the run ends."""

    def run(self, ctx: Ctx) -> None: ...


class AsyncStep(Finishable[Ctx], Protocol[Ctx]):
    """A stage that awaits (a VM, the store).  Its cleanup stays synchronous on purpose:
    it must run to the end while the run is being cancelled (Ctrl-C)."""

    def run(self, ctx: Ctx) -> Awaitable[None]: ...


class Terminated(ImageFactoryError):
    """The build was asked to stop (SIGTERM/SIGHUP); treated like a failure of the current step."""

    exit_status = 143


@dataclass(frozen=True)
class Keep:
    """Which ends of a run keep its work (the outputs of the steps that have `keep`)."""

    failed: bool = False
    """A step raised, or the run's own verdict says it failed: keep it for debugging."""
    succeeded: bool = False
    """Keep it after a success too (`klab test --keep=always`)."""
    interrupted: bool = False
    """Ctrl-C or cancellation (not an `Exception`): keep what was made so far."""

    @classmethod
    def on_error(cls, mode: OnError) -> Keep:
        """The build's `--on-error`: `abort` keeps a failed or interrupted build's work."""
        return cls(failed=True, interrupted=True) if mode == "abort" else cls()

    def applies(self, error: BaseException | None, failed: bool) -> bool:
        if error is not None and not isinstance(error, Exception):
            return self.interrupted
        return self.failed if (error is not None or failed) else self.succeeded


@dataclass
class StepTiming:
    name: str
    seconds: float
    status: Literal["done", "cached", "failed"]


@dataclass
class RunReport:
    timings: list[StepTiming] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(t.seconds for t in self.timings)


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
class _Runner(Generic[C, S]):
    """What both runners share: the steps, the timings, how a run ends (cleanup or keep)."""

    steps: Sequence[S]
    on_error: OnError = "cleanup"
    report: RunReport = field(default_factory=RunReport)
    on_step: Callable[[str], None] | None = None
    keep: Keep | None = None
    """The whole policy; None: the one `on_error` names (the build's switch)."""
    failed: Callable[[C], bool] | None = None
    """A run can fail without an exception (the test stage: tests that failed)."""

    def _start(self, step: Finishable[C]) -> None:
        log.info("step.start", step=step.name)
        if self.on_step is not None:
            self.on_step(step.name)

    def _restored(self, step: Finishable[C], ctx: C, began: float) -> bool:
        """Whether the step's output was cached under its key and is now in `ctx`."""
        key_of, restore = getattr(step, "key", None), getattr(step, "restore", None)
        if key_of is None or restore is None:
            return False
        key = key_of(ctx)
        if key is None or not restore(ctx, key):
            return False
        self.report.timings.append(StepTiming(step.name, time.monotonic() - began, "cached"))
        log.info("step.cached", step=step.name, key=key)
        return True

    def _timed(self, name: str, began: float, status: Literal["done", "failed"]) -> None:
        elapsed = time.monotonic() - began
        self.report.timings.append(StepTiming(name, elapsed, status))
        if status == "done":
            log.info("step.done", step=name, seconds=round(elapsed, 2))

    @contextmanager
    def _ending(self, ctx: C, started: Sequence[Finishable[C]]) -> Iterator[None]:
        """Around the whole run: end it (`_end`) whether it succeeded or not."""
        try:
            yield
        except BaseException as exc:
            self._end(ctx, started, exc)
            raise
        self._end(ctx, started, None)

    @contextmanager
    def _step(self, ctx: C, step: S, started: list[S]) -> Iterator[bool]:
        """Around one step: start, time and record it; yields whether it must run (False:
        its output was restored from the cache)."""
        self._start(step)
        started.append(step)  # a step that fails halfway still owns what it made
        began = time.monotonic()
        if self._restored(step, ctx, began):
            yield False
            return
        try:
            yield True
        except BaseException:
            self._timed(step.name, began, "failed")
            raise
        self._timed(step.name, began, "done")

    def _end(self, ctx: C, started: Sequence[Finishable[C]], error: BaseException | None) -> None:
        """Every started step, in reverse: `keep` if the run keeps its work and the step
        has one, `cleanup` otherwise."""
        failed = error is not None or (self.failed is not None and self.failed(ctx))
        policy = self.keep if self.keep is not None else Keep.on_error(self.on_error)
        keeping = policy.applies(error, failed)
        if error is not None:
            log.error("run.failed", step=started[-1].name if started else None, error=str(error))
        if keeping:
            log.warning("run.kept", steps=[s.name for s in started if hasattr(s, "keep")])
        # Ending must complete even if Ctrl-C arrives again: ignore SIGINT meanwhile.
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            for step in reversed(started):
                keep = getattr(step, "keep", None) if keeping else None
                try:
                    if keep is not None:
                        keep(ctx)
                        log.info("step.kept", step=step.name)
                    else:
                        step.cleanup(ctx)
                        log.info("step.cleanup", step=step.name)
                except Exception as exc:  # one failed cleanup must not stop the others
                    log.error("step.cleanup.failed", step=step.name, error=str(exc))
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


@dataclass
class StepRunner(_Runner[C, "Step[C]"]):
    """Runs synchronous steps in order (the build); SIGTERM and SIGHUP stop it like Ctrl-C."""

    def run(self, ctx: C) -> RunReport:
        started: list[Step[C]] = []
        with terminate_as_exception(), self._ending(ctx, started):
            for step in self.steps:
                with self._step(ctx, step, started) as runs:
                    if runs:
                        step.run(ctx)
        return self.report


@dataclass
class AsyncStepRunner(_Runner[C, "AsyncStep[C]"]):
    """Runs awaitable steps in order (the test stage); a cancellation ends the run like
    Ctrl-C ends a synchronous one."""

    async def run(self, ctx: C) -> RunReport:
        started: list[AsyncStep[C]] = []
        with self._ending(ctx, started):
            for step in self.steps:
                with self._step(ctx, step, started) as runs:
                    if runs:
                        await step.run(ctx)
        return self.report
