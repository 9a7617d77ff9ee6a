"""Benchmark how fast the CLI starts, as a ratio to a bare interpreter start.

    .venv/bin/python bench/cli_start.py [--repeat 15] [--only TEXT]

Each measurement is a `klab` command line registered with `@measurement(label, target)`;
the target is a ratio: the command's median wall time over the median of `python -c pass`
run by the same interpreter, interleaved with it in one run (so a busy host slows both and
the ratio stays meaningful where absolute times would not).  Every command runs in a fresh
subprocess against a scratch state directory and a scratch files store, so nothing on the
host (a zfs pool, a long history) changes the figure.  `main` prints each median and ratio
with its target and exits 1 when a target is missed.

Target (issue 14): `klab --help`, `klab status` and `klab history` within 8x a bare start
(it was ~14x: building the parser imported requests, rich, pydantic, qemu.qmp and pycdlib).
`klab status` does real work on top of its start: it reads the spec files for the distros'
names (without the models: no pydantic, spec/index.py), lists the store, reads the history
and probes the exporter, so its figure includes that; the others are start-up and a SQLite
read.  It was 14-17x while it validated every spec with pydantic and the store imported
structlog.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BARE = [sys.executable, "-c", "pass"]
REAL_LOG = REPO / "tests" / "unit" / "testrun" / "logs" / "zts-2.3.9-debian13-quick-real.log"


@dataclass(frozen=True)
class Measurement:
    label: str
    argv: Callable[[], list[str]]
    target_ratio: float | None


MEASUREMENTS: list[Measurement] = []


def measurement(
    label: str, target_ratio: float | None = None
) -> Callable[[Callable[[], list[str]]], Callable[[], list[str]]]:
    """Register a function returning the command line to time, with its ratio target."""

    def register(func: Callable[[], list[str]]) -> Callable[[], list[str]]:
        MEASUREMENTS.append(Measurement(label, func, target_ratio))
        return func

    return register


def klab(*args: str) -> list[str]:
    # The console script is `imagefactory.cli:main`; `-m imagefactory` is the same entry.
    return [sys.executable, "-m", "imagefactory", *args]


@measurement("klab --help", 8.0)
def top_help() -> list[str]:
    return klab("--help")


@measurement("klab status (files store, 5 distros x 2 lineages)", 8.0)
def status() -> list[str]:
    return klab("status")


@measurement("klab history (one recorded run)", 8.0)
def history() -> list[str]:
    return klab("history")


@measurement("klab history --flaky (one recorded run)")
def history_flaky() -> list[str]:
    return klab("history", "--flaky")


@measurement("klab history --help")
def history_help() -> list[str]:
    return klab("history", "--help")


@measurement("klab test --help")
def test_help() -> list[str]:
    return klab("test", "--help")


@measurement("klab --version")
def version() -> list[str]:
    return klab("--version")


def seconds(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)}: exit {proc.returncode}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="runs of each command (median)")
    parser.add_argument("--only", default="", help="the measurements whose label has TEXT")
    args = parser.parse_args()
    chosen = [m for m in MEASUREMENTS if args.only in m.label]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "IMAGEFACTORY_STATE": str(Path(tmp) / "state"),
            "IMAGEFACTORY_STORE": f"file:{Path(tmp) / 'goldens'}",
            "IMAGEFACTORY_HOME": str(REPO),
        }
        # A real history to read: one zfs-tests.sh console judged and recorded.
        record = ["results", "judge", str(REAL_LOG), "--no-baseline", "--distro", "debian13"]
        seconds(klab(*record, "--record"), env, ok=(0, 1))  # 1: the log has failures
        for m in chosen:  # once first: a failing command is an error, not a figure
            seconds(m.argv(), env)
        bare: list[float] = []
        runs: dict[str, list[float]] = {m.label: [] for m in chosen}
        for _ in range(args.repeat):  # interleaved: load on the host hits all alike
            bare.append(seconds(BARE, env))
            for m in chosen:
                runs[m.label].append(seconds(m.argv(), env))
    base = statistics.median(bare)
    width = max((len(m.label) for m in chosen), default=0)
    print(f"{'python -c pass':{width}s} {base * 1000:7.1f} ms   1.0x")
    missed = 0
    for m in chosen:
        median = statistics.median(runs[m.label])
        ratio = median / base
        verdict = ""
        if m.target_ratio is not None:
            ok = ratio <= m.target_ratio
            missed += not ok
            verdict = f"  target <= {m.target_ratio:.0f}x {'ok' if ok else 'MISSED'}"
        print(f"{m.label:{width}s} {median * 1000:7.1f} ms {ratio:5.1f}x{verdict}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
