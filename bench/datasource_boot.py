"""Benchmark a clone's boot with and without the seal's multi-datasource configuration.

    .venv/bin/python bench/datasource_boot.py [--golden QCOW2] [--repeat 2] [--accel auto|kvm|tcg]

Target (issue 17): the datasource list the seal writes (`99_zz-klab-datasources.cfg`:
NoCloud, ConfigDrive, OpenStack, Ec2, GCE, Azure, None) must not lengthen a clone's boot by
more than 10 s: cloud-init's ds-identify has to settle on the NoCloud seed without waiting on
metadata services that are absent.  "after" is the golden as sealed (default: the Debian
ztest golden the end-to-end tests cache); "before" is the same image with the two klab
files removed from `/etc/cloud/cloud.cfg.d/` (the bootstrap image's own `[NoCloud, None]`
then applies).  Both boot as a clone does -- a qcow2 overlay, a NoCloud seed -- with two
trivial hooks; the figure is boot-to-first-hook (QEMU `cont` to the first hook's start line
on the host), interleaved before/after so the host's load drifts hit both alike, median of
`--repeat` rounds.  Needs root (a loop mount of the image's root partition).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vm_hooks import one_boot

from imagefactory.log import configure_logging
from imagefactory.vm.accel import select_accel

KLAB_DATASOURCE_FILES = ("99_zz-klab-datasources.cfg", "99_zz-klab-ec2.cfg")
TARGET_S = 10.0


def default_golden() -> Path:
    return Path.home() / ".cache/imagefactory-tests/ztest/store/klab-ztest-debian.qcow2"


def root_partition(raw: Path) -> tuple[int, int]:
    """(offset, size) in bytes of the image's largest partition: the root file system."""
    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, check=True).stdout
    )["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    part = max(table["partitions"], key=lambda p: int(p["size"]))
    return int(part["start"]) * sector, int(part["size"]) * sector


def without_klab_datasources(raw: Path) -> list[str]:
    """Removes the seal's datasource files from the raw image `raw`; returns what it removed
    (both must be there: a golden sealed before them measures nothing)."""
    offset, size = root_partition(raw)
    with tempfile.TemporaryDirectory(prefix="bench-ds-mnt-") as mnt:
        loop = subprocess.run(
            ["losetup", "--find", "--show", "--offset", str(offset), "--sizelimit", str(size),
             str(raw)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        try:
            subprocess.run(["mount", loop, mnt], check=True)
            try:
                cfg = Path(mnt) / "etc/cloud/cloud.cfg.d"
                found = [f for f in KLAB_DATASOURCE_FILES if (cfg / f).exists()]
                if len(found) != len(KLAB_DATASOURCE_FILES):
                    raise SystemExit(f"{raw}: sealed without the datasource files ({found})")
                for name in found:
                    (cfg / name).unlink()
                return found
            finally:
                subprocess.run(["umount", mnt], check=True)
        finally:
            subprocess.run(["losetup", "-d", loop], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", type=Path, default=default_golden())
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    args = parser.parse_args()
    configure_logging(-1)
    accel = select_accel(args.accel).accel
    boots: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-ds-", dir="/var/tmp") as tmp:
        after = Path(tmp) / "after.raw"
        before = Path(tmp) / "before.raw"
        subprocess.run(
            ["qemu-img", "convert", "-O", "raw", str(args.golden), str(after)], check=True
        )
        subprocess.run(["cp", "--sparse=always", str(after), str(before)], check=True)
        removed = without_klab_datasources(before)
        print(f"before = {args.golden.name} without {', '.join(removed)}", flush=True)
        for i in range(args.repeat):
            for label, image in (("before", before), ("after", after)):
                work = Path(tmp) / f"{label}-{i}"
                work.mkdir()
                row = one_boot(image, accel, work, backing_format="raw")
                boots[label].append(row[0])
                print(
                    f"round {i + 1} {label} ({accel}): boot to first hook {row[0]:.1f} s "
                    f"(guest uptime {row[1]:.1f} s)",
                    flush=True,
                )
    b, a = statistics.median(boots["before"]), statistics.median(boots["after"])
    verdict = "within" if a - b <= TARGET_S else "OVER"
    print(
        f"median boot to first hook: before {b:.1f} s, after {a:.1f} s, "
        f"growth {a - b:+.1f} s ({verdict} the {TARGET_S:.0f} s target)"
    )
    return 0 if a - b <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
