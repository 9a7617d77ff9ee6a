"""`--bpf zio,txg,arc,spl | all | none`: which zfs-bt scripts run alongside the tests.

Kept apart from the trace parsing so that building the command line imports nothing heavy.
Default: all four, under KVM and TCG alike.  Issue 15 keeps the default to what costs less
than 10 %: `bench/teststage.py --scale-out` and a second round (2026-12-03, 15 quick-suite
tests on the Debian golden under TCG, one clone of two vCPUs) gave medians of two runs of
469 s with all four, 489 s with zio,txg and 438 s with none: +7.1 % and +11.6 %, within a
noise as large (the bare run alone took 404 s and 472 s).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from imagefactory.testrun.bpftrace import SCRIPTS


def bpf_option(text: str) -> tuple[str, ...]:
    """argparse type of `--bpf zio,txg,arc,spl | all | none`."""
    words = [w for w in re.split(r"[,\s]+", text.strip().lower()) if w]
    if words == ["none"]:
        return ()
    if words == ["all"]:
        return SCRIPTS
    unknown = [w for w in words if w not in SCRIPTS]
    if unknown or not words:
        raise argparse.ArgumentTypeError(
            f"unknown bpftrace script {', '.join(unknown) or repr(text)}: "
            f"choose from {','.join(SCRIPTS)}, all or none"
        )
    return tuple(s for s in SCRIPTS if s in words)


def scripts_for(chosen: Sequence[str] | None) -> tuple[str, ...]:
    """What runs: `--bpf` when given, else all four."""
    return SCRIPTS if chosen is None else tuple(chosen)


def add_bpf_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bpf",
        type=bpf_option,
        metavar="zio,txg,arc,spl|all|none",
        help="bpftrace scripts run alongside the tests, parsed into bpftrace/<name>.json "
        "(default: all four)",
    )
