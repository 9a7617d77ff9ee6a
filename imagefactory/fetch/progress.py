"""Download progress: a rich bar for a person at a terminal, periodic log events for CI.

A CI log full of carriage-return bar redraws is unreadable and a silent multi-minute download
looks hung, so off a TTY we emit one structured ``fetch.progress`` event every few seconds.
Each retry or resume calls `start` again with the bytes already on disk.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Protocol

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

log = structlog.get_logger(__name__)


class ProgressSink(Protocol):
    """What the downloader reports to; `start` may be called again after a retry."""

    def start(self, total: int | None, done: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Reports nothing (progress disabled)."""

    def start(self, total: int | None, done: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def close(self) -> None:
        pass


class LogProgress:
    """Emits a ``fetch.progress`` event at most every `interval` seconds."""

    def __init__(self, label: str, *, interval: float = 10.0) -> None:
        self.label = label
        self.interval = interval
        self.total: int | None = None
        self.done = 0
        self._started = time.monotonic()
        self._start_done = 0
        self._last = 0.0

    def start(self, total: int | None, done: int) -> None:
        self.total = total
        self.done = done
        self._start_done = done
        self._started = self._last = time.monotonic()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(now)

    def _emit(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        fields: dict[str, object] = {"file": self.label, "bytes": self.done, "rate_bps": int(rate)}
        if self.total:
            fields["total"] = self.total
            fields["percent"] = round(100 * self.done / self.total, 1)
            if rate > 0:
                fields["eta_s"] = round((self.total - self.done) / rate)
        log.info("fetch.progress", **fields)

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar with bytes, rate and ETA on stderr."""

    def __init__(self, label: str) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None
        self._label = label

    def start(self, total: int | None, done: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=total, completed=done)
        else:
            self._progress.reset(self._task, total=total, completed=done)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, nbytes)

    def close(self) -> None:
        self._progress.stop()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def make_progress(label: str, enabled: bool | None = None) -> ProgressSink:
    """A bar when `enabled` (None: when stderr is a TTY), log events otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return RichProgress(label) if enabled else LogProgress(label)
