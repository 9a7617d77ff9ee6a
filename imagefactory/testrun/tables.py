"""Tables for the test stage's commands: rich on a terminal, aligned plain text elsewhere.

Plain text keeps CI logs and pipes (`klab history | grep ubuntu`) free of box drawing and
escape codes; widths are measured in terminal cells so emoji columns still line up.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text


def format_duration(seconds: float | None) -> str:
    """`8m13s`, `2h14m24s`, `42s`; `?` when unknown."""
    if seconds is None:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = ()
) -> str:
    widths = [max(cell_len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = []
        for i, cell in enumerate(row):
            pad = " " * (widths[i] - cell_len(cell))
            cells.append(pad + cell if i in right else cell + pad)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def print_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    file: TextIO | None = None,
) -> None:
    stream = file if file is not None else sys.stdout
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        stream.write(format_table(headers, rows, right=right))
        return
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="right" if i in right else "left")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
