"""Watch a clone's serial console while its tests run: a stalled boot, and progress.

The VM's overall deadline has to cover the whole suite (hours), which is far too long to
notice a clone that never got as far as starting its test runner (cloud-init broken, no
seed found).  So the console is followed on the side: when the runner's `begin` status
line has not appeared within the boot allowance, the boot is declared stalled and the
stage stops the VM.  Meanwhile every result line the suite prints is counted, and a
progress line goes out now and then, so a four-hour run is visibly alive.

The same reading stops a clone that can no longer finish (`GuestCrashed`): a kernel line
that reports a panic, an oops, a BUG or a soft lockup (testrun/crash.py; a few seconds are
left for the trace to reach the console), or no test finished for the hang timeout while
the tests run (above zfs-tests.sh's own 600 s per test: the suite would have killed that
test and moved on).  xfstests-bld's LTM does the same with an hour without progress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from imagefactory.errors import ImageFactoryError, InfrastructureError
from imagefactory.testrun.crash import COLLECTING_MARK, RECIPE_END, hook_text, signature
from imagefactory.testrun.results import parse_lines

log = structlog.get_logger(__name__)

BEGIN_MARK = b'imagefactory-status: {"event":"begin"'
POLL = 2.0
PROGRESS_EVERY = 300.0
HANG_TIMEOUT = 1200.0
"""`--hang-timeout`'s default: twice zfs-tests.sh's 600 s per-test limit."""
CRASH_GRACE = 15.0
"""Seconds between a crash line and stopping the VM: the rest of the trace comes first."""


class BootStalled(InfrastructureError):
    """The clone did not start its test runner within the boot allowance."""


class GuestCrashed(ImageFactoryError):
    """The clone's kernel crashed, or its tests stopped making progress (a hang)."""

    def __init__(self, message: str, *, hung: bool = False) -> None:
        super().__init__(message)
        self.hung = hung


class ConsoleWatch:
    def __init__(
        self,
        console: Path,
        distro: str,
        *,
        boot_allowance: float,
        report: Callable[[str], None] | None = None,
        progress_every: float = PROGRESS_EVERY,
        poll: float = POLL,
        hang_timeout: float | None = None,
        crash_grace: float = CRASH_GRACE,
    ) -> None:
        self.console = console
        self.distro = distro
        self.boot_allowance = boot_allowance
        self.report = report
        self.progress_every = progress_every
        self.poll = poll
        self.hang_timeout = hang_timeout
        """None: only the boot is watched (crash lines too)."""
        self.crash_grace = crash_grace
        self.crash: str | None = None
        self.collecting = False
        self._crash_seen: float | None = None
        self._progress_at: float | None = None
        self.begun = False
        self.tests = 0
        self.failed = 0
        self.last: str | None = None
        self._offset = 0
        self._partial = b""

    def read_now(self) -> None:
        """Read what the console holds now (after QEMU exited: its last lines)."""
        self._read()

    def _read(self) -> None:
        try:
            with self.console.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        self._offset += len(chunk)
        data = self._partial + chunk
        lines, _, self._partial = data.rpartition(b"\n")
        if not lines:
            return
        if not self.begun and BEGIN_MARK in lines:
            self.begun = True
        text = lines.decode("utf-8", "replace").splitlines()
        parsed = parse_lines(text)
        progressed = bool(parsed.tests)
        for test in parsed.tests:
            self.tests += 1
            self.failed += test.category in ("fail", "killed")
            self.last = f"{test.name} {test.result}"
        for line in text:
            said = hook_text(line)
            if said is None:
                if self.crash is None and (found := signature(line)) is not None:
                    self.crash, self._crash_seen = found, time.monotonic()
                continue
            if RECIPE_END.search(said):
                progressed = True
            elif said.startswith(COLLECTING_MARK):
                self.collecting = True
        if self.begun and (progressed or self._progress_at is None):
            self._progress_at = time.monotonic()

    def progress(self) -> str:
        text = f"{self.distro}: {self.tests} test(s) done"
        if self.failed:
            text += f", {self.failed} failed"
        return text + (f", last {self.last}" if self.last else "")

    def _check_crash(self, now: float) -> None:
        if self._crash_seen is not None and now - self._crash_seen >= self.crash_grace:
            raise GuestCrashed(f"the guest crashed: {self.crash}")
        if (
            self.hang_timeout is not None
            and self._progress_at is not None
            and not self.collecting
            and self._crash_seen is None
            and now - self._progress_at > self.hang_timeout
        ):
            raise GuestCrashed(
                f"no test finished for {self.hang_timeout:g}s (--hang-timeout): a hang",
                hung=True,
            )

    async def run(self) -> None:
        """Returns only by raising BootStalled or GuestCrashed (or by being cancelled)."""
        started = time.monotonic()
        said = started
        reported = 0
        while True:
            await asyncio.sleep(self.poll)
            await asyncio.to_thread(self._read)
            now = time.monotonic()
            if not self.begun and now - started > self.boot_allowance:
                raise BootStalled(
                    f"the clone did not start its test runner within {self.boot_allowance:g}s",
                    hint=f"see {self.console}",
                )
            self._check_crash(now)
            if self.tests != reported and now - said >= self.progress_every:
                said, reported = now, self.tests
                log.info("test.progress", distro=self.distro, tests=self.tests, last=self.last)
                if self.report is not None:
                    self.report(self.progress())
