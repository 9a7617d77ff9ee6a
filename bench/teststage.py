"""Benchmark the test stage's start: clone + seed + QEMU process start, by golden size.

    .venv/bin/python bench/teststage.py [--repeat 7]

Targets (issue 8): clone + seed + QEMU process start <= 1 s, and for a 20 GiB golden at most
1.1x the time for a 1 GiB golden (files store).  Two goldens are published into a scratch
files store (sparse, the same few MiB of data); each repetition clones one, builds the
clone's seed, SSH key, runner hook and results disk exactly as `klab test` does
(`Stage.prepare`), starts QEMU under QMP and stops timing once the guest was told to run
(`cont`); then QEMU is stopped and the clone destroyed (not timed).  The figure is the
median; a warm-up round comes first.  Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from imagefactory.spec.loader import load_distro
from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.testrun.selection import parse_selection
from imagefactory.testrun.stage import Stage, StageOptions
from imagefactory.vm.machine import Machine

GIB = 1024**3
MIB = 1024**2
SIZES = {"1GiB": 1 * GIB, "20GiB": 20 * GIB}


def sparse_image(path: Path, size: int) -> Path:
    """The same 8 MiB of data whatever the size: only the virtual size differs."""
    with path.open("wb") as f:
        f.truncate(size)
        for offset in (0, 256 * MIB):
            f.seek(offset)
            f.write(bytes(range(256)) * (4 * MIB // 256))
    return path


def publish(store: FileStore, leaf: str, image: Path, size: int) -> None:
    volume = store.create_build_volume(leaf, "bench", size)
    volume = store.write_image(volume, image, source_format="raw")
    store.publish(volume, Provenance(distro="debian13", lineage="ztest", build_id="bench"))


async def one_start(stage: Stage, leaf: str, work: Path) -> tuple[float, dict[str, float]]:
    resolved = stage.specs[0]
    t0 = time.perf_counter()
    clone = stage.store.clone(leaf)
    t1 = time.perf_counter()
    boot = stage.prepare(resolved, clone, work / "work")
    t2 = time.perf_counter()
    machine = Machine(boot.config, log_dir=work / "logs")
    try:
        await machine.boot()
        t3 = time.perf_counter()
    finally:
        await machine.close()
        stage.store.destroy_clone(clone)
        shutil.rmtree(work, ignore_errors=True)
    return t3 - t0, {"clone": t1 - t0, "seed": t2 - t1, "qemu": t3 - t2}


async def measure(repeat: int, root: Path) -> dict[str, list[tuple[float, dict[str, float]]]]:
    store = FileStore(root / "store")
    resolved = load_distro("debian13", lineage="ztest")
    for label, size in SIZES.items():
        image = sparse_image(root / f"{label}.raw", size)
        publish(store, f"bench-{label.lower()}", image, size)
        image.unlink()
    stage = Stage(
        [resolved],
        parse_selection(run=["cli_root/zpool_create/zpool_create_001_pos"]),
        StageOptions(accel="tcg", runs_root=root / "runs", history=root / "history.sqlite"),
        store,
    )
    results: dict[str, list[tuple[float, dict[str, float]]]] = {label: [] for label in SIZES}
    await one_start(stage, "bench-1gib", root / "warmup")
    for i in range(repeat):
        for label in SIZES:  # interleaved, so host load drifts hit both sizes alike
            results[label].append(await one_start(stage, f"bench-{label.lower()}", root / f"r{i}"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-teststage-", dir="/var/tmp") as tmp:
        results = asyncio.run(measure(args.repeat, Path(tmp)))
    medians = {}
    for label, runs in results.items():
        totals = [total for total, _ in runs]
        medians[label] = statistics.median(totals)
        parts = {k: statistics.median(p[k] for _, p in runs) for k in runs[0][1]}
        detail = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in parts.items())
        print(
            f"{label:>6} golden: clone + seed + QEMU start median {medians[label]:.3f} s "
            f"(min {min(totals):.3f}, max {max(totals):.3f}; {detail})"
        )
    ratio = medians["20GiB"] / medians["1GiB"]
    worst = max(medians.values())
    print(f"20 GiB / 1 GiB: {ratio:.2f}x (target <= 1.10x); slowest median {worst:.3f} s "
          "(target <= 1 s)")  # fmt: skip
    ok = worst <= 1.0 and ratio <= 1.1
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
