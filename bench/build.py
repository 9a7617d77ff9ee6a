"""Benchmark the build's host-side cost: overhead around the guest, and write allocation.

    sudo .venv/bin/python bench/build.py [--distro debian13] [--keep DIR]

Targets (issue 5): with the base image cached, host-side overhead of a build (wall time
minus the guest's run time: QEMU start to exit) is <= 5 % of the total and <= 15 s; an
image written into the files store allocates <= 1.05x the image's allocated data, not its
virtual size.

It builds the lean golden from the bootstrap source twice into a temporary files store
(the first run fills the image cache, the second is measured: `--force`, so it boots), then
reads the build's manifest.json.  The allocation figure writes the cached base image into a
fresh build volume and compares the blocks it takes with the data `qemu-img map` reports.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from imagefactory.fetch.cache import ImageCache
from imagefactory.spec.digest import Digest
from imagefactory.store.files import FileStore

OVERHEAD_SHARE = 0.05
OVERHEAD_SECONDS = 15.0
ALLOCATION_RATIO = 1.05


def allocated_data(image: Path) -> int:
    """Bytes of guest data the image really holds (allocated extents, not its size)."""
    out = subprocess.run(
        ["qemu-img", "map", "--output=json", str(image)], capture_output=True, check=True
    ).stdout
    return sum(int(e["length"]) for e in json.loads(out) if e.get("data"))


def build(env: dict[str, str], distro: str, *, force: bool) -> None:
    argv = [sys.executable, "-m", "imagefactory", "-q", "golden", distro, "--source", "bootstrap"]
    if force:
        argv.append("--force")
    subprocess.run(argv, env=env, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--distro", default="debian13")
    parser.add_argument("--keep", type=Path, help="work directory to use and keep")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="imagefactory-bench-"))
    env = {
        **os.environ,
        "IMAGEFACTORY_STORE": f"file:{work / 'store'}",
        "IMAGEFACTORY_CACHE": str(work / "cache"),
        "IMAGEFACTORY_STATE": str(work / "state"),
    }
    build(env, args.distro, force=False)
    build(env, args.distro, force=True)
    manifests = sorted((work / "state" / "builds").glob("*/*/manifest.json"))
    manifest = json.loads(manifests[-1].read_text())
    wall, guest = float(manifest["wall_seconds"]), float(manifest["guest_seconds"])
    overhead = wall - guest
    share = overhead / wall
    print(
        f"build wall {wall:.1f}s, guest {guest:.1f}s, host overhead {overhead:.1f}s "
        f"({share:.1%}; targets <= {OVERHEAD_SHARE:.0%} and <= {OVERHEAD_SECONDS:.0f}s)"
    )
    for step in manifest["steps"]:
        print(f"  {step['name']:<10} {step['seconds']:8.2f}s  {step['status']}")

    source = ImageCache(work / "cache").get(Digest.parse(manifest["source"]["digest"]))
    assert source is not None
    store = FileStore(work / "alloc-store")
    volume = store.create_build_volume("klab-golden-bench", "alloc", 10 * 1024**3)
    volume = store.write_image(volume, source)
    written = volume.path.stat().st_blocks * 512
    data = allocated_data(source)
    ratio = written / data
    store.destroy_build_volume(volume)
    print(
        f"image data {data / 2**20:.1f} MiB, written volume allocates {written / 2**20:.1f} MiB "
        f"({ratio:.3f}x; target <= {ALLOCATION_RATIO}x), virtual size {volume.size / 2**30:.0f} GiB"
    )
    ok = share <= OVERHEAD_SHARE and overhead <= OVERHEAD_SECONDS and ratio <= ALLOCATION_RATIO
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
