"""A progress bar on a terminal, nothing otherwise (logs and CI output stay clean).

rich is imported only when a bar is shown, so `imagefactory --help` never pays for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[float], None]
"""Report progress as a percentage (0-100)."""


def _ignore(_: float) -> None:
    return None


@contextmanager
def percent_bar(label: str, *, enabled: bool | None = None) -> Iterator[Advance]:
    """A bar for one step measured in percent; `enabled` None: only when stderr is a TTY."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    columns = (
        "{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=100.0)
        yield lambda pct: bar.update(task, completed=pct)
