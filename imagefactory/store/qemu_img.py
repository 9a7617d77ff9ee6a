"""The few `qemu-img` operations the stores need, as typed functions over `run()`.

Formats are always passed explicitly once known: letting qemu-img probe a raw image is how
a guest that wrote a qcow2 header into its disk gets the host to open a backing file of its
choosing.  The only probe is `detect_format`, used on downloaded images whose format the
caller did not state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagefactory.errors import CommandError
from imagefactory.run import require_tool, run

_HINT = "qemu-img comes with qemu-utils: apt-get install qemu-utils"


def _qemu_img() -> str:
    return require_tool("qemu-img", package="qemu-utils")


def info(path: Path, fmt: str | None = None) -> dict[str, Any]:
    """`qemu-img info --output=json`; `-U` so an image in use by QEMU can be inspected."""
    argv = [_qemu_img(), "info", "-U", "--output=json"]
    if fmt is not None:
        argv += ["-f", fmt]
    proc = run([*argv, str(path)], hint=_HINT)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def detect_format(path: Path) -> str:
    return str(info(path)["format"])


def virtual_size(path: Path, fmt: str) -> int:
    return int(info(path, fmt)["virtual-size"])


def create(
    path: Path,
    fmt: str,
    size: int | None = None,
    *,
    backing: str | None = None,
    backing_format: str | None = None,
    unsafe: bool = False,
) -> None:
    """Create an empty image, or an overlay on `backing` (kept as given: relative names are
    resolved by QEMU against the overlay's directory).  `unsafe` does not open the backing
    file (it need not exist yet where the overlay is written; give `size` then)."""
    argv: list[str] = [_qemu_img(), "create", "-q", "-f", fmt]
    if backing is not None:
        argv += ["-b", backing, "-F", backing_format or "qcow2"]
        if unsafe:
            argv.append("-u")
    argv.append(str(path))
    if size is not None:
        argv.append(str(size))
    run(argv, hint=_HINT)


def convert(
    source: Path,
    source_format: str,
    target: Path,
    target_format: str,
    *,
    existing_zeroed_target: bool = False,
) -> None:
    """Copy an image, skipping zeros so the target stays sparse.

    With `existing_zeroed_target` the target (a fresh zvol) is written in place (`-n`) and
    qemu-img is told it reads as zeros already, so it writes only the data.
    """
    argv: list[str] = [_qemu_img(), "convert", "-f", source_format, "-O", target_format]
    if existing_zeroed_target:
        argv += ["-n", "--target-is-zero"]
    run([*argv, str(source), str(target)], hint=_HINT)


def resize(path: Path, fmt: str, size: int) -> None:
    run([_qemu_img(), "resize", "-q", "-f", fmt, str(path), str(size)], hint=_HINT)


def allocated_data(path: Path, fmt: str) -> int:
    """Bytes of the image that hold data (`qemu-img map`), which is what a sparse copy of
    it must allocate, whatever its virtual size or its own compression."""
    proc = run(
        [_qemu_img(), "map", "-U", "--output=json", "-f", fmt, str(path)],
        hint=_HINT,
    )
    extents: list[dict[str, Any]] = json.loads(proc.stdout)
    return sum(int(e["length"]) for e in extents if e.get("data"))


def compare(a: Path, a_format: str, b: Path, b_format: str) -> bool:
    """Whether two images have the same guest-visible content (`qemu-img compare`)."""
    argv = [_qemu_img(), "compare", "-U", "-q", "-f", a_format, "-F", b_format, str(a), str(b)]
    proc = run(argv, check=False, hint=_HINT)
    if proc.returncode not in (0, 1):  # 2: an error, not a difference
        raise CommandError(argv, proc.returncode, proc.stderr or "", hint=_HINT)
    return proc.returncode == 0
