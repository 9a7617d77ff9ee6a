"""Benchmark the host side of the test stage: parsing and the history.

    .venv/bin/python bench/results.py [--distros 1] [--runs 100] [--tests 1500]

Targets (issue 8): parse a 1,500-test console log in <= 0.3 s; `klab history` over 100
stored runs of 1,500 tests in <= 0.2 s.  Each figure is the median of several repetitions;
the history query is timed through the CLI's own handler (query + formatting, stdout
discarded), and once more as a whole `klab history` process for reference.  Exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imagefactory.cli import main
from imagefactory.testrun.history import History
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import TestResult, parse_log

SUITE = "/usr/share/zfs/zfs-tests/tests/functional"
DISTROS = ("debian13", "ubuntu24", "fedora44", "centos9", "rocky9")


def test_names(count: int) -> list[str]:
    """Names shaped like the suite's: ~10 tests per group, groups nested under a few roots."""
    roots = ("cli_root", "rsend", "fault", "removal", "raidz", "l2arc", "userquota", "zvol")
    return [
        f"{roots[(i // 10) % len(roots)]}/group_{i // 10:03d}/test_{i:04d}_pos"
        for i in range(count)
    ]


def console_log(names: list[str], seed: int = 1) -> str:
    """A 2.4-style console (timestamps, a :Linux section, RERAN, KILLED) plus zts-report."""
    rng = random.Random(seed)
    lines = ["/usr/share/zfs/test-runner/bin/test-runner.py  -K -c quick.run -T functional"]
    counts = {"PASS": 0, "FAIL": 0, "SKIP": 0, "KILLED": 0, "RERAN": 0}
    unexpected = []
    clock = datetime(2026, 4, 22, 3, 0, tzinfo=UTC)
    for i, name in enumerate(names):
        roll = rng.random()
        result = (
            "PASS"
            if roll < 0.93
            else "SKIP"
            if roll < 0.97
            else "FAIL"
            if roll < 0.995
            else "KILLED"
        )
        reran = rng.random() < 0.002
        seconds = rng.randint(0, 90)
        clock += timedelta(seconds=seconds)
        ident = " (Linux)" if i % 97 == 0 else ""
        head = f"Test{ident}: {SUITE}/{name} (run as root) "
        tail = f"[{seconds // 60:02d}:{seconds % 60:02d}] [{result}]" + (
            " (RERAN)" if reran else ""
        )
        stamp = clock.strftime("[%Y-%m-%dT%H:%M:%S.%f] ")
        lines.append(stamp + head + " " * max(1, 80 - len(head) - len(tail)) + tail)
        counts[result] += 1
        counts["RERAN"] += reran
        if result in ("FAIL", "KILLED"):
            unexpected.append(f"    {result} {name} (expected PASS)")
    lines += ["", "Results Summary"]
    lines += [f"{key}\t{n: 4d}" for key, n in counts.items() if n]
    lines += ["", "Running Time:\t09:12:00", "Percent passed:\t93.0%"]
    lines += ["Log directory:\t/var/tmp/test_results/20260422T030000", ""]
    lines += ["Tests with results other than PASS that are expected:", ""]
    lines += ["Tests with result of PASS that are unexpected:", ""]
    lines += ["Tests with results other than PASS that are unexpected:", *unexpected, ""]
    return "\n".join(lines)


def median_seconds(func: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fill_history(path: Path, names: list[str], runs: int, distros: int) -> float:
    start = time.perf_counter()
    rng = random.Random(2)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with History.open(path) as history:
        for r in range(runs):
            run_id = f"run{r:04d}"
            history.start_run(
                run_id,
                selection="suite=quick",
                command="klab test all --suite quick",
                started=t0 + timedelta(hours=r),
            )
            for distro in DISTROS[:distros]:
                tests = [
                    TestResult(name, "PASS" if rng.random() < 0.95 else "FAIL", 12.0)
                    for name in names
                ]
                outcome = DistroOutcome.from_tests(distro, tests, zfs_version="2.3.9-1")
                history.record_outcome(run_id, outcome)
            history.finish_run(run_id, t0 + timedelta(hours=r, minutes=50))
    return time.perf_counter() - start


def cli_seconds(argv: list[str], repeat: int) -> float:
    def call() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            if main(argv) != 0:
                raise SystemExit(f"klab {' '.join(argv)} failed")

    call()  # warm the page cache and imports, as a second `klab history` would find them
    return median_seconds(call, repeat)


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--distros", type=int, default=1, choices=range(1, len(DISTROS) + 1))
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    names = test_names(args.tests)
    log = console_log(names)
    parsed = parse_log(log)
    assert len(parsed.tests) == args.tests and parsed.complete, "generated log misparsed"
    figures: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "console.log"
        log_path.write_text(log)
        figures.append(
            (
                f"parse {args.tests}-test log ({len(log) // 1024} KiB), file to ParsedRun",
                median_seconds(lambda: parse_log(log_path.read_text()), args.repeat),
                0.3,
            )
        )
        figures.append(
            (
                "klab results parse --json (in-process)",
                cli_seconds(["results", "parse", str(log_path), "--json"], args.repeat),
                None,
            )
        )

        db = Path(tmp) / "history.sqlite"
        rows = args.runs * args.distros * args.tests
        fill = fill_history(db, names, args.runs, args.distros)
        size = db.stat().st_size + sum(p.stat().st_size for p in Path(tmp).glob("*-wal"))
        print(
            f"stored {args.runs} runs x {args.distros} distro(s) x {args.tests} tests "
            f"= {rows} rows in {fill:.1f}s ({size / 2**20:.0f} MiB)"
        )
        base = ["history", "--db", str(db)]
        figures.append(("klab history", cli_seconds(base, args.repeat), 0.2))
        figures.append(
            ("klab history --last 100", cli_seconds([*base, "--last", "100"], args.repeat), 0.2)
        )
        figures.append(
            (
                "klab history --distro D",
                cli_seconds([*base, "--distro", DISTROS[0]], args.repeat),
                0.2,
            )
        )
        figures.append(
            (
                "klab history --test T (exact)",
                cli_seconds([*base, "--test", names[700]], args.repeat),
                0.2,
            )
        )
        basename = names[700].rsplit("/", 1)[1]
        figures.append(
            (
                "klab history --test T (basename)",
                cli_seconds([*base, "--test", basename], args.repeat),
                0.2,
            )
        )
        figures.append(
            ("klab history --diff-last", cli_seconds([*base, "--diff-last"], args.repeat), 0.2)
        )

        def process() -> None:
            subprocess.run(
                [sys.executable, "-m", "imagefactory", *base],
                check=True,
                stdout=subprocess.DEVNULL,
            )

        figures.append(
            (
                "klab history as a new process (python startup included)",
                median_seconds(process, 3),
                None,
            )
        )

    missed = 0
    for label, seconds, target in figures:
        verdict = ""
        if target is not None:
            ok = seconds <= target
            missed += not ok
            verdict = f"target <= {target:.1f}s {'ok' if ok else 'MISSED'}"
        print(f"{label:60s} {seconds * 1000:8.1f} ms  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main_bench())
