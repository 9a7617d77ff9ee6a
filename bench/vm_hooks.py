"""Benchmark a provisioning boot: boot-to-first-hook and hook-end-to-poweroff.

    .venv/bin/python bench/vm_hooks.py [--image QCOW2] [--repeat 1] [--accel auto|kvm|tcg]

Boots a qcow2 overlay of the cached bootstrap test image (built on first use, as the tests
do; or `--image`) with a seed carrying two trivial hooks, and reports per boot:

- boot to first hook: from `cont` (QEMU starts the guest) to the host receiving the first
  hook's `start` line; the guest's own uptime at that moment is shown too;
- hook end to poweroff: from the host receiving the last status line (`done`) to the QEMU
  process exiting after the guest powered itself off;
- total wall time from QEMU start to exit.

Figures depend on the host's load: on a shared two-core machine, other guests double them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from imagefactory.log import configure_logging
from imagefactory.vm.accel import select_accel
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.provision import provision
from imagefactory.vm.qemu_args import Accel, VmConfig
from imagefactory.vm.seed import build_key_comment, build_seed, generate_ssh_key

HOOKS = [
    Hook("10-first.sh", b"#!/usr/bin/env bash\nset -euo pipefail\necho first\n", 60),
    Hook("20-second.sh", b"#!/usr/bin/env bash\nset -euo pipefail\necho second\n", 60),
]


def default_image() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fixtures.guest_images import guest_image

    return guest_image()


def one_boot(
    image: Path, accel: Accel, work: Path, *, backing_format: str = "qcow2"
) -> tuple[float, float, float, float]:
    overlay = work / "disk.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format, "-b", str(image),
         str(overlay)],
        check=True,
    )  # fmt: skip
    plan = HookPlan.of(HOOKS)
    key = generate_ssh_key(work / "ssh", build_key_comment("bench"))
    seed = work / "seed.iso"
    build_seed(name="bench", default_user="debian", key=key, hooks=plan).write_iso(seed)
    config = VmConfig(name="bench", disk=overlay, seed=seed, accel=accel, boot_timeout=1800)
    result = provision(config, plan, log_dir=work / "logs")
    result.raise_for_failure()
    assert result.boot_to_first_hook is not None and result.last_status_to_exit is not None
    return (
        result.boot_to_first_hook,
        result.first_hook_guest_uptime or 0.0,
        result.last_status_to_exit,
        result.total_seconds,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="base qcow2 (default: the test image)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    args = parser.parse_args()
    configure_logging(-1)
    image = args.image or default_image()
    accel = select_accel(args.accel).accel
    rows = []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="imagefactory-bench-vm-") as tmp:
            row = one_boot(image, accel, Path(tmp))
        rows.append(row)
        print(
            f"boot {i + 1} ({accel}): boot to first hook {row[0]:.1f}s "
            f"(guest uptime {row[1]:.1f}s), hook end to poweroff {row[2]:.1f}s, "
            f"total {row[3]:.1f}s"
        )
    if len(rows) > 1:
        medians = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(
            f"median: boot to first hook {medians[0]:.1f}s, "
            f"hook end to poweroff {medians[2]:.1f}s, total {medians[3]:.1f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
