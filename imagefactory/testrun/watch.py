"""Watch a clone's serial console while its tests run: a stalled boot, and progress.

The VM's overall deadline has to cover the whole suite (hours), which is far too long to
notice a clone that never got as far as starting its test runner (cloud-init broken, no
seed found).  So the console is followed on the side: when the runner's `begin` status
line has not appeared within the boot allowance, the boot is declared stalled and the
stage stops the VM.  Meanwhile every result line the suite prints is counted, and a
progress line goes out now and then, so a four-hour run is visibly alive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from imagefactory.errors import InfrastructureError
from imagefactory.testrun.results import parse_lines

log = structlog.get_logger(__name__)

BEGIN_MARK = b'imagefactory-status: {"event":"begin"'
POLL = 2.0
PROGRESS_EVERY = 300.0


class BootStalled(InfrastructureError):
    """The clone did not start its test runner within the boot allowance."""


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
    ) -> None:
        self.console = console
        self.distro = distro
        self.boot_allowance = boot_allowance
        self.report = report
        self.progress_every = progress_every
        self.poll = poll
        self.begun = False
        self.tests = 0
        self.failed = 0
        self.last: str | None = None
        self._offset = 0
        self._partial = b""

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
        parsed = parse_lines(lines.decode("utf-8", "replace").splitlines())
        for test in parsed.tests:
            self.tests += 1
            self.failed += test.category in ("fail", "killed")
            self.last = f"{test.name} {test.result}"

    def progress(self) -> str:
        text = f"{self.distro}: {self.tests} test(s) done"
        if self.failed:
            text += f", {self.failed} failed"
        return text + (f", last {self.last}" if self.last else "")

    async def run(self) -> None:
        """Returns only by raising BootStalled (or by being cancelled)."""
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
            if self.tests != reported and now - said >= self.progress_every:
                said, reported = now, self.tests
                log.info("test.progress", distro=self.distro, tests=self.tests, last=self.last)
                if self.report is not None:
                    self.report(self.progress())
