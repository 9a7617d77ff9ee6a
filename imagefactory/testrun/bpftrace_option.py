"""`--bpf zio,txg,arc,spl | all | none`: which zfs-bt scripts run alongside the tests.

Kept apart from the trace parsing so that building the command line imports nothing heavy.
Default: all four under KVM; under TCG zio and txg only (the guest runner's long-standing
default), because arc.bt and spl.bt fire on every ARC read and every kmem allocation and
their cost under emulation is not measured yet (issue 15 asks for less than 10 %).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from imagefactory.testrun.bpftrace import SCRIPTS

DEFAULT_TCG = ("zio", "txg")


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


def scripts_for(chosen: Sequence[str] | None, accel: str | None) -> tuple[str, ...]:
    """What runs: `--bpf` when given, else the default for the accelerator."""
    if chosen is not None:
        return tuple(chosen)
    return SCRIPTS if accel == "kvm" else DEFAULT_TCG


def add_bpf_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bpf",
        type=bpf_option,
        metavar="zio,txg,arc,spl|all|none",
        help="bpftrace scripts run alongside the tests, parsed into bpftrace/<name>.json "
        "(default: all four with KVM, zio,txg under TCG)",
    )
