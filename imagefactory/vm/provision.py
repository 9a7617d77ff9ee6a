"""Boot a VM with a seed, follow its hooks over the status channel, and always end it.

Deadlines, all raced against QEMU exiting: the whole boot (`boot_timeout`, hooks
included); each hook, from its `start` line, gets its own timeout plus a grace for the
guest's `timeout` to report first; after the last status line the guest has
`poweroff_grace` to power itself off before the host presses the power button, then
`quit`s, then kills.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import structlog

from imagefactory.errors import ImageFactoryError
from imagefactory.vm.channel import (
    FAILED_OUTPUT_LINES,
    HookResult,
    HookTracker,
    Outcome,
    StatusParseError,
    hook_output_tail,
    parse_status_line,
    timing_table,
)
from imagefactory.vm.firmware import UefiFirmware
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.machine import Machine, MachineExited, ShutdownInfo, VmError
from imagefactory.vm.qemu_args import VmConfig

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# The guest's timeout(1) sends KILL 10 s after TERM; give it that, and time to report.
HOOK_GRACE = 30.0
POWEROFF_GRACE = 120.0
STOP_GRACE = 30.0


class HookFailed(ImageFactoryError):
    """A hook failed, timed out, or the VM ended before the hooks did."""

    def __init__(self, result: ProvisionResult) -> None:
        super().__init__(result.summary(), hint=f"console log: {result.console_log}")
        self.result = result


@dataclass
class ProvisionResult:
    """What happened in one provisioning boot, with the figures the build reports."""

    outcome: Outcome
    message: str
    hooks: list[HookResult]
    console_log: Path
    failed_hook: str | None = None
    failed_rc: int | None = None
    failed_output: list[str] = field(default_factory=list)
    shutdown: ShutdownInfo | None = None
    boot_to_first_hook: float | None = None
    first_hook_guest_uptime: float | None = None
    last_status_to_exit: float | None = None
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded" and self.shutdown is not None and self.shutdown.clean

    def summary(self) -> str:
        if self.ok:
            return f"{len(self.hooks)} hook(s) succeeded in {self.total_seconds:.1f}s"
        text = self.message
        if self.failed_hook is not None and self.failed_rc is not None:
            text += f" (exit status {self.failed_rc})"
        if self.failed_output:
            text += f"\nlast {len(self.failed_output)} line(s) of {self.failed_hook}:\n"
            text += "\n".join(f"  {line}" for line in self.failed_output)
        return text

    def report(self) -> str:
        """The timing table plus, on failure, which hook failed and its last output lines."""
        lines = [timing_table(self.hooks)]
        if self.boot_to_first_hook is not None:
            lines.append(f"boot to first hook: {self.boot_to_first_hook:.1f}s")
        if self.last_status_to_exit is not None:
            lines.append(f"last hook end to poweroff: {self.last_status_to_exit:.1f}s")
        if not self.ok:
            lines.append(self.summary())
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise HookFailed(self)


async def _follow(
    machine: Machine, tracker: HookTracker, plan: HookPlan, deadline: float, hook_grace: float
) -> None:
    """Read status lines until the tracker finishes, a deadline passes, or QEMU exits."""
    reader = machine.status_reader
    while not tracker.finished:
        now = time.monotonic()
        limit, hook_limit = deadline, False
        if tracker.current is not None:
            started = tracker.results[tracker.current].started or now
            hook = plan.get(tracker.current)
            if hook is not None and started + hook.timeout + hook_grace < limit:
                limit, hook_limit = started + hook.timeout + hook_grace, True
        try:
            line = await machine.race(
                reader.readline(), max(0.0, limit - now), what="a status line from the guest"
            )
        except TimeoutError:
            if hook_limit and tracker.current is not None:
                name = tracker.current
                tracker.host_timeout(name, f"hook {name} timed out (the guest stopped reporting)")
                log.error("hook.timeout", hook=name, detected_by="host")
            else:
                tracker.abort(f"the boot did not finish within {machine.config.boot_timeout:g}s")
                log.error("vm.boot_timeout", timeout=machine.config.boot_timeout)
            return
        except MachineExited as exc:
            tracker.abort(f"the VM stopped before the hooks finished: {exc}")
            return
        except VmError as exc:
            tracker.abort(str(exc))
            return
        if not line:
            # QEMU closed the channel; it is exiting.  Let the exit explain why.
            info = await machine.wait_shutdown(STOP_GRACE)
            reason = info.reason if info is not None else "unknown"
            tracker.abort(f"the VM stopped before the hooks finished (shutdown: {reason})")
            return
        try:
            event = parse_status_line(line, time.monotonic())
        except StatusParseError as exc:
            log.warning("channel.garbage", error=str(exc))
            continue
        tracker.apply(event)


async def provision_async(
    config: VmConfig,
    plan: HookPlan,
    *,
    log_dir: Path,
    qemu: str = "qemu-system-x86_64",
    uefi: UefiFirmware | None = None,
    hook_grace: float = HOOK_GRACE,
    poweroff_grace: float = POWEROFF_GRACE,
    stop_grace: float = STOP_GRACE,
) -> ProvisionResult:
    """Boot `config` (whose seed carries `plan`), run the hooks, and return what happened.

    `stop_grace` is how long a guest the host has to stop gets to react to the power
    button before QEMU is told to quit.
    """
    tracker = HookTracker(plan.names)
    started = time.monotonic()
    async with Machine(config, log_dir=log_dir, qemu=qemu, uefi=uefi) as machine:
        deadline = (machine.booted_at or started) + config.boot_timeout
        await _follow(machine, tracker, plan, deadline, hook_grace)
        if _guest_reported_end(tracker):
            # The guest reported its end and powers itself off; wait for that first.
            info = await machine.wait_shutdown(poweroff_grace)
            if info is None:
                log.warning("vm.no_poweroff", grace=poweroff_grace)
                info = await machine.powerdown(grace=stop_grace)
        else:
            info = await machine.powerdown(grace=stop_grace)
        booted_at = machine.booted_at
    return _result(tracker, machine, info, booted_at, started)


def _guest_reported_end(tracker: HookTracker) -> bool:
    """The runner's last word (it powers off right after); not a host-side verdict."""
    return (
        tracker.finished
        and tracker.last is not None
        and tracker.last.event in ("end", "timeout", "done", "error")
    )


def _result(
    tracker: HookTracker,
    machine: Machine,
    info: ShutdownInfo,
    booted_at: float | None,
    started: float,
) -> ProvisionResult:
    result = ProvisionResult(
        outcome=tracker.outcome,
        message=tracker.message or "",
        hooks=tracker.ordered(),
        console_log=machine.console_log,
        failed_hook=tracker.failed_hook,
        shutdown=info,
        total_seconds=info.exited_at - started,
    )
    if tracker.first_start is not None and booted_at is not None:
        result.boot_to_first_hook = tracker.first_start.received - booted_at
        result.first_hook_guest_uptime = tracker.first_start.uptime
    if _guest_reported_end(tracker) and tracker.last is not None:
        result.last_status_to_exit = info.exited_at - tracker.last.received
    if tracker.failed_hook is not None:
        result.failed_rc = tracker.results[tracker.failed_hook].rc
        console = machine.console_log.read_text(errors="replace")
        result.failed_output = hook_output_tail(console, tracker.failed_hook, FAILED_OUTPUT_LINES)
    if result.outcome == "succeeded" and not info.clean:
        result.outcome, result.message = "error", f"the VM did not power off cleanly: {info}"
    for hook in result.hooks:
        log.info("hook.timing", hook=hook.name, state=hook.state, rc=hook.rc, seconds=hook.seconds)
    if result.failed_hook is not None:
        log.error(
            "hook.failed_output",
            hook=result.failed_hook,
            rc=result.failed_rc,
            console=str(result.console_log),
            output="\n".join(result.failed_output),
        )
    log.info(
        "provision.result",
        outcome=result.outcome,
        failed_hook=result.failed_hook,
        rc=result.failed_rc,
        boot_to_first_hook=result.boot_to_first_hook,
        last_status_to_exit=result.last_status_to_exit,
        total=round(result.total_seconds, 1),
    )
    return result


def _blocking(func: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, R]:
    """`func` with its own event loop, for synchronous callers (the build's boot step)."""

    @functools.wraps(func)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> R:
        return asyncio.run(func(*args, **kwargs))

    return blocking


provision = _blocking(provision_async)
"""`provision_async` for the synchronous pipeline: runs its own event loop."""
