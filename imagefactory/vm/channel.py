"""The guest's status channel, seen from the host: parse lines, track hooks, report.

The guest runner (hooks/runner/run-hooks.sh) writes one JSON object per line to the
`org.imagefactory.status` virtio-serial port: `begin`, then `start` and `end` (or `timeout`)
per hook, then `done` -- or `error` if the runner itself broke.  The tracker turns that
stream into per-hook results, so the host knows which hook failed, with which status and
after how long, without logging into the guest.  Hook output is on the serial console,
one `NN-name| ` prefixed line each, which is how a failed hook's tail is cut out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)

EventName = Literal["begin", "start", "end", "timeout", "done", "error"]
EVENTS: tuple[EventName, ...] = ("begin", "start", "end", "timeout", "done", "error")
HookState = Literal["pending", "running", "ok", "failed", "timeout", "not-run"]
Outcome = Literal["running", "succeeded", "failed", "timeout", "error"]
FAILED_OUTPUT_LINES = 40


class StatusParseError(ValueError):
    """A line on the status port that is not one of the runner's status objects."""


@dataclass(frozen=True)
class StatusEvent:
    """One status line, with the host's monotonic clock at the moment it arrived."""

    event: EventName
    received: float
    hook: str | None = None
    rc: int | None = None
    seconds: float | None = None
    timeout: float | None = None
    uptime: float | None = None
    hooks: int | None = None
    message: str | None = None


def _number(data: dict[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StatusParseError(f"{key} is not a number: {value!r}")
    if kind is int and not float(value).is_integer():
        raise StatusParseError(f"{key} is not an integer: {value!r}")
    return kind(value)


def parse_status_line(line: bytes | str, received: float) -> StatusEvent:
    """Parse one line; anything that is not a known status object raises StatusParseError."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip().strip("\0")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StatusParseError(f"not JSON: {text[:200]!r}") from exc
    if not isinstance(data, dict):
        raise StatusParseError(f"not a JSON object: {text[:200]!r}")
    event = data.get("event")
    if event not in EVENTS:
        raise StatusParseError(f"unknown event {event!r}")
    hook = data.get("hook")
    if hook is not None and not isinstance(hook, str):
        raise StatusParseError(f"hook is not a string: {hook!r}")
    if event in ("start", "end", "timeout") and not hook:
        raise StatusParseError(f"{event} event without a hook name")
    if event in ("end", "timeout") and data.get("rc") is None:
        raise StatusParseError(f"{event} event without rc")
    message = data.get("message")
    return StatusEvent(
        event=event,
        received=received,
        hook=hook,
        rc=_number(data, "rc", int),
        seconds=_number(data, "seconds", float),
        timeout=_number(data, "timeout", float),
        uptime=_number(data, "uptime", float),
        hooks=_number(data, "hooks", int),
        message=str(message) if message is not None else None,
    )


@dataclass
class HookResult:
    name: str
    state: HookState = "pending"
    rc: int | None = None
    seconds: float | None = None
    timeout: float | None = None
    started: float | None = None


@dataclass
class HookTracker:
    """Folds status events into per-hook results and the run's outcome."""

    names: Sequence[str]
    results: dict[str, HookResult] = field(init=False)
    outcome: Outcome = field(default="running", init=False)
    current: str | None = field(default=None, init=False)
    failed_hook: str | None = field(default=None, init=False)
    message: str | None = field(default=None, init=False)
    begin: StatusEvent | None = field(default=None, init=False)
    first_start: StatusEvent | None = field(default=None, init=False)
    last: StatusEvent | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.results = {name: HookResult(name) for name in self.names}

    @property
    def finished(self) -> bool:
        return self.outcome != "running"

    def apply(self, event: StatusEvent) -> None:
        """Record one event; events for unknown hooks or out of order are protocol errors."""
        self.last = event
        if event.event == "begin":
            self.begin = event
            log.info("hooks.begin", hooks=event.hooks, guest_uptime=event.uptime)
            return
        if event.event == "error":
            self._finish("error", None, event.message or "the guest's hook runner failed")
            log.error("hooks.runner_error", message=self.message, rc=event.rc)
            return
        if event.event == "done":
            self.current = None
            missing = [r.name for r in self.results.values() if r.state != "ok"]
            if missing:
                message = f"runner reported done but hooks did not run: {missing}"
                self._finish("error", None, message)
            else:
                self._finish("succeeded", None, "all hooks succeeded")
            log.info("hooks.done", hooks=event.hooks, seconds=event.seconds)
            return
        assert event.hook is not None  # parse_status_line guarantees it for hook events
        result = self.results.get(event.hook)
        if result is None:
            self._finish("error", event.hook, f"guest reported an unknown hook {event.hook}")
            log.error("hooks.unknown", hook=event.hook)
            return
        if event.event == "start":
            if self.first_start is None:
                self.first_start = event
            result.state, result.started, result.timeout = "running", event.received, event.timeout
            self.current = event.hook
            log.info(
                "hook.start", hook=event.hook, timeout=event.timeout, guest_uptime=event.uptime
            )
            return
        result.rc, result.seconds = event.rc, event.seconds
        self.current = None
        if event.event == "timeout":
            result.state = "timeout"
            self._finish("timeout", event.hook, f"hook {event.hook} timed out")
            log.error("hook.timeout", hook=event.hook, seconds=event.seconds, limit=result.timeout)
        elif event.rc == 0:
            result.state = "ok"
            log.info("hook.end", hook=event.hook, rc=0, seconds=event.seconds)
        else:
            result.state = "failed"
            self._finish("failed", event.hook, f"hook {event.hook} exited {event.rc}")
            log.error("hook.failed", hook=event.hook, rc=event.rc, seconds=event.seconds)

    def host_timeout(self, hook: str, message: str) -> None:
        """The host's own deadline for a hook passed: the guest never reported an end."""
        result = self.results[hook]
        result.state = "timeout"
        self.current = None
        self._finish("timeout", hook, message)

    def abort(self, message: str) -> None:
        """The VM stopped (or was stopped) before the runner finished."""
        if self.current is not None:
            self.results[self.current].state = "failed"
            self.failed_hook = self.current
            self.current = None
        self._finish("error", self.failed_hook, message)

    def _finish(self, outcome: Outcome, hook: str | None, message: str) -> None:
        if self.finished:
            return
        self.outcome, self.failed_hook, self.message = outcome, hook, message
        for result in self.results.values():
            if result.state == "pending":
                result.state = "not-run"

    def ordered(self) -> list[HookResult]:
        return [self.results[name] for name in self.names]


def timing_table(results: Sequence[HookResult]) -> str:
    """A plain-text table, one row per hook: name, state, exit status, seconds."""
    rows = [("hook", "state", "rc", "seconds")]
    for r in results:
        rc = "" if r.rc is None else str(r.rc)
        secs = "" if r.seconds is None else f"{r.seconds:.1f}"
        rows.append((r.name, r.state, rc, secs))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}"
        for a, b, c, d in rows
    ]
    total = sum(r.seconds or 0.0 for r in results)
    lines.append(f"{'total':<{widths[0]}}  {'':<{widths[1]}}  {'':>{widths[2]}}  {total:>.1f}")
    return "\n".join(line.rstrip() for line in lines)


# Terminal control sequences the guest may print (colour, cursor movement).
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def hook_output_tail(console: str, hook: str, lines: int = FAILED_OUTPUT_LINES) -> list[str]:
    """The last `lines` lines a hook printed, cut from the console log by their prefix."""
    prefix = f"{hook}| "
    out: list[str] = []
    for raw in console.splitlines():
        line = _ANSI.sub("", raw.replace("\r", ""))
        # Kernel messages may land on the same line before the prefix; keep what follows it.
        index = line.find(prefix)
        if index >= 0:
            out.append(line[index + len(prefix) :])
    return out[-lines:]
