"""The one step runner: every run ends by finishing off its started steps in reverse.

cleanup on success and failure alike; `keep` instead, for the steps that have it, when the
run keeps its work (`Keep`); the same ending for the build's synchronous steps and the test
stage's awaitable ones, Ctrl-C (a cancellation) and SIGTERM included.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

import pytest

from imagefactory.builder.steps import AsyncStepRunner, Keep, StepRunner, Terminated


@dataclass
class Log:
    events: list[str] = field(default_factory=list)
    failed: bool = False


class Scratch:
    """A step whose output never outlives the run (no `keep`)."""

    def __init__(self, name: str, error: BaseException | None = None) -> None:
        self.name = name
        self.error = error

    def run(self, ctx: Log) -> None:
        ctx.events.append(f"run {self.name}")
        if self.error is not None:
            raise self.error

    def cleanup(self, ctx: Log) -> None:
        ctx.events.append(f"cleanup {self.name}")


class Kept(Scratch):
    """A step whose output outlives a run that keeps its work."""

    def keep(self, ctx: Log) -> None:
        ctx.events.append(f"keep {self.name}")


class AsyncScratch:
    def __init__(self, name: str, error: BaseException | None = None) -> None:
        self.name = name
        self.error = error

    async def run(self, ctx: Log) -> None:
        ctx.events.append(f"run {self.name}")
        if self.error is not None:
            raise self.error

    def cleanup(self, ctx: Log) -> None:
        ctx.events.append(f"cleanup {self.name}")


class AsyncKept(AsyncScratch):
    def keep(self, ctx: Log) -> None:
        ctx.events.append(f"keep {self.name}")


class Boom(Exception):
    pass


def test_a_successful_run_cleans_up_every_step_in_reverse() -> None:
    ctx = Log()
    report = StepRunner([Kept("volume"), Scratch("seed"), Scratch("boot")]).run(ctx)

    assert ctx.events == [
        "run volume", "run seed", "run boot", "cleanup boot", "cleanup seed", "cleanup volume",
    ]  # fmt: skip
    assert [(t.name, t.status) for t in report.timings] == [
        ("volume", "done"), ("seed", "done"), ("boot", "done"),
    ]  # fmt: skip


def test_a_failed_run_cleans_up_the_started_steps_the_failing_one_included() -> None:
    ctx = Log()
    runner = StepRunner([Kept("volume"), Scratch("seed", Boom("no")), Scratch("boot")])

    with pytest.raises(Boom):
        runner.run(ctx)

    assert ctx.events == ["run volume", "run seed", "cleanup seed", "cleanup volume"]
    assert [t.status for t in runner.report.timings] == ["done", "failed"]


def test_abort_keeps_a_failed_runs_work_and_still_cleans_up_the_scratch() -> None:
    ctx = Log()
    steps = [Kept("volume"), Scratch("seed"), Scratch("boot", Boom("hook failed"))]

    with pytest.raises(Boom):
        StepRunner(steps, "abort").run(ctx)

    assert ctx.events[3:] == ["cleanup boot", "cleanup seed", "keep volume"]


def test_abort_changes_nothing_for_a_run_that_succeeds() -> None:
    ctx = Log()
    StepRunner([Kept("volume"), Scratch("seed")], "abort").run(ctx)
    assert ctx.events[2:] == ["cleanup seed", "cleanup volume"]


def test_keep_on_success_and_a_verdict_without_an_exception() -> None:
    always, failed = Keep(failed=True, succeeded=True), Keep(failed=True)

    ctx = Log()
    StepRunner([Kept("clone")], keep=always).run(ctx)
    assert ctx.events == ["run clone", "keep clone"]

    ctx = Log(failed=True)  # the tests failed: no step raised
    StepRunner([Kept("clone")], keep=failed, failed=lambda c: c.failed).run(ctx)
    assert ctx.events == ["run clone", "keep clone"]

    ctx = Log(failed=False)
    StepRunner([Kept("clone")], keep=failed, failed=lambda c: c.failed).run(ctx)
    assert ctx.events == ["run clone", "cleanup clone"]


def test_an_interrupt_keeps_work_only_where_the_policy_says_so() -> None:
    for keep, expected in ((Keep(failed=True), "cleanup"), (Keep.on_error("abort"), "keep")):
        ctx = Log()
        with pytest.raises(KeyboardInterrupt):
            StepRunner([Kept("clone"), Scratch("boot", KeyboardInterrupt())], keep=keep).run(ctx)
        assert ctx.events[-1] == f"{expected} clone", keep


def test_one_failing_cleanup_does_not_stop_the_others() -> None:
    class BrokenCleanup(Scratch):
        def cleanup(self, ctx: Log) -> None:
            raise OSError("busy")

    ctx = Log()
    StepRunner([Scratch("volume"), BrokenCleanup("seed")]).run(ctx)
    assert ctx.events[-1] == "cleanup volume"


def test_sigterm_stops_the_run_like_a_failure_and_the_cleanups_run() -> None:
    class Killed(Scratch):
        def run(self, ctx: Log) -> None:
            ctx.events.append(f"run {self.name}")
            os.kill(os.getpid(), signal.SIGTERM)

    ctx = Log()
    with pytest.raises(Terminated):
        StepRunner([Scratch("volume"), Killed("boot")]).run(ctx)
    assert ctx.events[2:] == ["cleanup boot", "cleanup volume"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was restored


def test_the_async_runner_ends_a_run_the_same_way() -> None:
    ctx = Log()
    with pytest.raises(Boom):
        asyncio.run(
            AsyncStepRunner([AsyncKept("clone"), AsyncScratch("seed", Boom("x"))], "abort").run(ctx)
        )
    assert ctx.events == ["run clone", "run seed", "cleanup seed", "keep clone"]


def test_a_cancelled_async_run_still_cleans_up() -> None:
    class Hangs(AsyncScratch):
        async def run(self, ctx: Log) -> None:
            ctx.events.append(f"run {self.name}")
            await asyncio.sleep(600)

    ctx = Log()
    runner = AsyncStepRunner([AsyncKept("clone"), Hangs("boot")], keep=Keep(failed=True))

    async def cancel_it() -> None:
        task = asyncio.create_task(runner.run(ctx))
        while "run boot" not in ctx.events:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    assert ctx.events == ["run clone", "run boot", "cleanup boot", "cleanup clone"]
