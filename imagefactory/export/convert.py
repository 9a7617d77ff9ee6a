"""`qemu-img convert` for an export, reporting its progress as it goes.

qemu-img's `-p` writes `    (42.00/100%)` records separated by carriage returns on its
standard output; they are parsed here into the percentage the progress bar shows.  Without
a listener no `-p` is passed at all.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path

import structlog

from imagefactory.errors import CommandError, InfrastructureError
from imagefactory.export.formats import ExportFormat
from imagefactory.export.progress import Advance
from imagefactory.run import require_tool

log = structlog.get_logger(__name__)

_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
_HINT = "qemu-img comes with qemu-utils: apt-get install qemu-utils"


def percentages(chunk: bytes) -> list[float]:
    """Every percentage in a piece of `qemu-img -p` output (values outside 0-100 dropped)."""
    found = (float(m.group(1)) for m in _PERCENT.finditer(chunk))
    return [p for p in found if 0.0 <= p <= 100.0]


def convert_argv(
    qemu_img: str, source: Path, source_format: str, target: Path, fmt: ExportFormat, *,
    progress: bool,
) -> list[str]:  # fmt: skip
    argv = [qemu_img, "convert", "-f", source_format, "-O", fmt.qemu_format, *fmt.options]
    if progress:
        argv.append("-p")
    return [*argv, str(source), str(target)]


def convert(
    source: Path,
    source_format: str,
    target: Path,
    fmt: ExportFormat,
    *,
    advance: Advance | None = None,
) -> None:
    """Write `source` to `target` in `fmt`; `advance` hears the percentage done."""
    qemu_img = require_tool("qemu-img", package="qemu-utils")
    argv = convert_argv(qemu_img, source, source_format, target, fmt, progress=advance is not None)
    log.debug("run", argv=argv)
    # stderr to a file: a pipe nobody reads while stdout is drained could fill and stall.
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
        except OSError as exc:
            raise InfrastructureError(f"cannot run qemu-img: {exc}", hint=_HINT) from exc
        assert proc.stdout is not None
        try:
            while chunk := os.read(proc.stdout.fileno(), 4096):
                if advance is not None:
                    for pct in percentages(chunk):
                        advance(pct)
            returncode = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: qemu-img must not outlive us
                proc.kill()
                proc.wait()
            proc.stdout.close()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if returncode != 0:
        raise CommandError(argv, returncode, stderr, hint=_HINT)
