"""The one wrapper every external tool goes through (qemu-img, zfs, mmdebstrap, gpgv...).

Commands are argument lists, never shell strings; each is logged before it runs, and a
failure raises `CommandError` with the command and the tail of its stderr, so the user
sees what failed and why without re-running anything by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagefactory.errors import CommandError, InfrastructureError
from imagefactory.log import get_logger

log = get_logger(__name__)  # structlog loads at the first event: reading a store logs none


def require_tool(name: str, *, package: str) -> str:
    """Return the tool's path, or fail naming the package that provides it."""
    path = shutil.which(name)
    if path is None:
        raise InfrastructureError(
            f"{name} is not installed", hint=f"install it: apt-get install {package}"
        )
    return path


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    capture: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    hint: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise CommandError carrying stderr and an optional hint."""
    args = [str(a) for a in argv]
    log.debug("run", argv=args)
    try:
        proc = subprocess.run(
            args,
            check=False,
            capture_output=capture,
            input=input.decode() if input is not None else None,
            text=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise InfrastructureError(f"{args[0]} is not installed", hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise InfrastructureError(
            f"{args[0]} timed out after {timeout}s: {' '.join(args)}"
        ) from exc
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, proc.stderr or "", hint=hint)
    return proc
