"""Benchmark the host side of the test stage: parsing, judging and the history.

    .venv/bin/python bench/results.py [--only TEXT] [--distros 1] [--runs 100] [--tests 1500]

Each measurement is one function registered with `@measurement(label, target_s)`; it takes
the shared `Bench` (arguments, a scratch dir, lazily built fixtures: names, a generated
console log, a filled history database) and returns seconds, normally the median of
`bench.repeat` runs through `median_seconds`.  `main` prints each figure with its target
and exits 1 when a target is missed.  To add a figure, write one decorated function.

Targets: parse a 1,500-test console log <= 0.3 s and `klab history` over 100 stored runs
of 1,500 tests <= 0.2 s (issue 8); a log with a 1 MiB line <= 1 s, judge a 1,500-test log
against a 300-entry baseline <= 0.3 s, `klab history --flaky` over 100 runs x 1,500 tests
<= 0.5 s and `--diff-last` <= 0.3 s on a realistic history (issue 12); `klab results merge`
of 10 run directories x 1,500 tests <= 1 s (issue 16); `klab report` of 5 distros x 1,500
tests <= 2 s and <= 5 MiB (issue 15).
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from imagefactory.cli import main
from imagefactory.testrun.baseline import load_baseline
from imagefactory.testrun.history import History
from imagefactory.testrun.judge import judge_run
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import TestResult, parse_file, parse_log
from imagefactory.testrun.verdict import RunContext, Verdict

SUITE = "/usr/share/zfs/zfs-tests/tests/functional"
DISTROS = ("debian13", "ubuntu24", "fedora44", "centos9", "rocky9")
REPO = Path(__file__).resolve().parent.parent
REAL_LOGS = REPO / "tests" / "unit" / "testrun" / "logs"
MIB = 1024 * 1024


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


def long_line_log(length: int = MIB) -> str:
    """The real 2.3.9 console with hostile 1 MiB lines where each parser state reads them.

    One in the test lines (a runaway `echo` in a test's output), one inside the Results
    Summary and one inside zts-report's unexpected section: the shape that once took 21 s
    (`'FAIL a (x)y ' * 16000`, a quarter of this length).
    """
    real = (REAL_LOGS / "zts-2.3.9-debian13-quick-real.log").read_text()
    noise = ("FAIL a (x)y " * (length // 12 + 1))[:length]
    head, summary, tail = real.partition("Results Summary\n")
    return head + noise + "\n" + summary + noise + "\n" + tail.rstrip("\n") + "\n" + noise + "\n"


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


def fill_realistic_history(path: Path, names: list[str], runs: int, distros: int) -> float:
    """A history shaped like the lab's: 4 % of tests always SKIP, 0.5 % always FAIL (known),
    2 % flaky at 1-12 % (FAIL or KILLED, most passing on the retry), durations spread like
    the suite's (seconds to many minutes, +-5 % per run), every run judged and recorded
    with its context as the test stage does; in the last run every tenth test is 60 %
    slower (what the timing section must find)."""
    start = time.perf_counter()
    rng = random.Random(3)
    shape = {}
    for name in names:
        roll = rng.random()
        kind = (
            "skip" if roll < 0.04 else "known" if roll < 0.045 else "flaky" if roll < 0.065 else ""
        )
        shape[name] = (kind, rng.uniform(0.01, 0.12), rng.lognormvariate(2.5, 1.2))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with History.open(path) as history:
        for r in range(runs):
            run_id = f"2026{r:04d}T0300Z-{r:06x}"
            started = t0 + timedelta(hours=6 * r)
            history.start_run(run_id, selection="suite=quick", command="klab rc", started=started)
            for distro in DISTROS[:distros]:
                tests = []
                for i, name in enumerate(names):
                    kind, rate, base = shape[name]
                    slower = 1.6 if r == runs - 1 and i % 10 == 7 else 1.0
                    seconds = round(base * rng.uniform(0.95, 1.05) * slower, 1)
                    attempts: tuple[str, ...] = ("PASS",)
                    if kind == "skip":
                        attempts = ("SKIP",)
                    elif kind == "known":
                        attempts = ("FAIL",)
                    elif kind == "flaky" and rng.random() < rate:
                        first = rng.choice(("FAIL", "KILLED"))
                        attempts = (first, "PASS") if rng.random() < 0.8 else (first, first)
                    tests.append(TestResult(name, attempts[-1], seconds, attempts=attempts))
                context = RunContext(distro, "2.3.9-1", "6.12.48+deb13-amd64", "tcg")
                outcome = DistroOutcome.from_tests(
                    distro, tests, zfs_version="2.3.9-1", context=context
                )
                history.record_outcome(run_id, outcome, lineage="ztest")
            history.finish_run(run_id, started + timedelta(minutes=50))
    return time.perf_counter() - start


@dataclass
class Bench:
    """What measurements share: the arguments, a scratch dir and fixtures built on first use."""

    tmp: Path
    tests: int
    runs: int
    distros: int
    repeat: int

    @cached_property
    def names(self) -> list[str]:
        return test_names(self.tests)

    @cached_property
    def log_path(self) -> Path:
        """A generated console of `tests` results; checked to parse before it is timed."""
        log = console_log(self.names)
        parsed = parse_log(log)
        assert len(parsed.tests) == self.tests and parsed.complete, "generated log misparsed"
        path = self.tmp / "console.log"
        path.write_text(log)
        return path

    @cached_property
    def history_db(self) -> Path:
        """A history of `runs` runs x `distros` distros x `tests` tests (filled once)."""
        db = self.tmp / "history.sqlite"
        fill = fill_history(db, self.names, self.runs, self.distros)
        size = db.stat().st_size + sum(p.stat().st_size for p in self.tmp.glob("*-wal"))
        rows = self.runs * self.distros * self.tests
        print(
            f"(stored {self.runs} runs x {self.distros} distro(s) x {self.tests} tests "
            f"= {rows} rows in {fill:.1f}s, {size / 2**20:.0f} MiB)"
        )
        return db

    @cached_property
    def realistic_history_db(self) -> Path:
        """`fill_realistic_history` of `runs` x `distros` x `tests` (filled once)."""
        db = self.tmp / "realistic.sqlite"
        fill = fill_realistic_history(db, self.names, self.runs, self.distros)
        print(f"(realistic history: {self.runs} runs filled in {fill:.1f}s)")
        return db

    def cli_seconds(self, argv: list[str]) -> float:
        """Median of `klab ARGV` through the CLI's own handler, stdout discarded."""

        def call() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                if main(argv) != 0:
                    raise SystemExit(f"klab {' '.join(argv)} failed")

        call()  # warm the page cache and imports, as a second `klab` call would find them
        return median_seconds(call, self.repeat)

    def history_seconds(self, *extra: str) -> float:
        return self.cli_seconds(["history", "--db", str(self.history_db), *extra])


@dataclass(frozen=True)
class Measurement:
    label: str
    target_s: float | None
    run: Callable[[Bench], float]


MEASUREMENTS: list[Measurement] = []


def measurement(
    label: str, target_s: float | None = None
) -> Callable[[Callable[[Bench], float]], Callable[[Bench], float]]:
    """Register a function `(Bench) -> seconds` under its label and target (None: reference)."""

    def register(func: Callable[[Bench], float]) -> Callable[[Bench], float]:
        MEASUREMENTS.append(Measurement(label, target_s, func))
        return func

    return register


# --- parsing -------------------------------------------------------------------------------


@measurement("parse a 1,500-test log, file to ParsedRun", 0.3)
def parse_generated(bench: Bench) -> float:
    path = bench.log_path
    return median_seconds(lambda: parse_file(path), bench.repeat)


@measurement("parse the real 2.3.9 quick console (97 result lines)", 0.3)
def parse_real_quick(bench: Bench) -> float:
    path = REAL_LOGS / "zts-2.3.9-debian13-quick-real.log"
    parsed = parse_file(path)
    assert len(parsed.tests) == 97 and parsed.complete, "real console misparsed"
    return median_seconds(lambda: parse_file(path), bench.repeat)


@measurement("parse a log with 1 MiB lines (tests, summary, zts-report)", 1.0)
def parse_long_lines(bench: Bench) -> float:
    path = bench.tmp / "long-lines.log"
    path.write_text(long_line_log())
    parsed = parse_file(path)
    assert len(parsed.tests) == 97, "real results lost around the long lines"
    return median_seconds(lambda: parse_file(path), bench.repeat)


@measurement("judge a 1,500-test log against a 300-entry baseline (ParsedRun to verdicts)", 0.3)
def judge_generated(bench: Bench) -> float:
    """270 exact entries (most scoped by distro, zfs, kernel or accel) and 30 globs."""
    rng = random.Random(3)
    scopes = ["", ", distros: [debian13]", ', zfs: ">=2.3,<2.4"', ", kernel: '^6\\.12\\.'"]
    lines = []
    for i, name in enumerate(rng.sample(bench.names, 270)):
        kind = "known" if i % 3 else "flaky"
        lines.append(
            f"- {{test: {name}, result: [FAIL, KILLED], kind: {kind}, reason: r{i}"
            f"{scopes[i % 4]}{', accel: tcg' if i % 5 == 0 else ''}}}"
        )
    groups = sorted({name.rsplit("/", 1)[0] for name in bench.names})
    lines += [
        f"- {{test: '{group}/*', result: SKIP, kind: flaky, reason: g{i}}}"
        for i, group in enumerate(rng.sample(groups, 30))
    ]
    path = bench.tmp / "baseline.yaml"
    path.write_text("\n".join(lines) + "\n")
    baseline = load_baseline([path])
    parsed = parse_file(bench.log_path)
    context = RunContext("debian13", "2.3.9-1", "6.12.48+deb13-amd64", "tcg")
    judged = judge_run(parsed, baseline, context)
    assert len(baseline.entries) == 300 and len(judged.verdicts) == len(parsed.tests)
    assert judged.of(Verdict.EXPECTED) and judged.of(Verdict.UNEXPECTED_PASS), "nothing matched"
    return median_seconds(lambda: judge_run(parsed, baseline, context), bench.repeat)


@measurement("klab results parse --json (in-process)")
def results_parse_cli(bench: Bench) -> float:
    return bench.cli_seconds(["results", "parse", str(bench.log_path), "--json"])


# --- history -------------------------------------------------------------------------------


@measurement("klab history", 0.2)
def history_plain(bench: Bench) -> float:
    return bench.history_seconds()


@measurement("klab history --last 100", 0.2)
def history_last(bench: Bench) -> float:
    return bench.history_seconds("--last", "100")


@measurement("klab history --distro D", 0.2)
def history_distro(bench: Bench) -> float:
    return bench.history_seconds("--distro", DISTROS[0])


@measurement("klab history --test T (exact)", 0.2)
def history_test_exact(bench: Bench) -> float:
    return bench.history_seconds("--test", bench.names[700])


@measurement("klab history --test T (basename)", 0.2)
def history_test_basename(bench: Bench) -> float:
    return bench.history_seconds("--test", bench.names[700].rsplit("/", 1)[1])


@measurement("klab history --diff-last", 0.3)
def history_diff_last(bench: Bench) -> float:
    return bench.history_seconds("--diff-last")


@measurement("klab history --flaky (realistic: 100 runs x 1,500 tests)", 0.5)
def history_flaky(bench: Bench) -> float:
    return bench.cli_seconds(["history", "--db", str(bench.realistic_history_db), "--flaky"])


@measurement("klab history --diff-last (realistic, timing included)", 0.3)
def history_diff_last_realistic(bench: Bench) -> float:
    return bench.cli_seconds(["history", "--db", str(bench.realistic_history_db), "--diff-last"])


@measurement("klab history --flaky (every test fails 5 %: the worst case)")
def history_flaky_worst(bench: Bench) -> float:
    return bench.history_seconds("--flaky")


@measurement("klab baseline suggest --no-baseline (realistic)")
def baseline_suggest(bench: Bench) -> float:
    db = str(bench.realistic_history_db)
    return bench.cli_seconds(["baseline", "suggest", "--db", db, "--no-baseline"])


@measurement("klab results rejudge last, repository baselines (realistic)")
def results_rejudge(bench: Bench) -> float:
    argv = ["results", "rejudge", "last", "--history", str(bench.realistic_history_db)]

    def call() -> None:  # exit 1 is an answer here: the known failures the baseline lacks
        with contextlib.redirect_stdout(io.StringIO()):
            if main(argv) not in (0, 1):
                raise SystemExit(f"klab {' '.join(argv)} failed")

    call()
    return median_seconds(call, bench.repeat)


@measurement("klab history as a new process (python startup included)")
def history_process(bench: Bench) -> float:
    argv = [sys.executable, "-m", "imagefactory", "history", "--db", str(bench.history_db)]
    return median_seconds(
        lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL), min(bench.repeat, 3)
    )


# --- scale out: merging the run directories of a CI matrix (issue 16) ----------------------


def merge_inputs(bench: Bench, tag: str, tests_per_dir: int) -> list[str]:
    """Ten machines' run directories, each one distro's console of `tests_per_dir` tests,
    written as the stage writes them (judged from the artifacts, then the run files)."""
    from imagefactory.testrun.collect import GoldenFacts, Judging, judge
    from imagefactory.testrun.run_files import write_run_files
    from imagefactory.testrun.selection import Selection

    selection = Selection("suite", ("linux",))
    runs = []
    for machine in range(10):
        distro = f"distro{machine:02d}"
        run_dir = bench.tmp / tag / f"2026042{machine}T030000Z-{machine:06x}"
        artifacts = run_dir / distro
        artifacts.mkdir(parents=True)
        names = bench.names[:tests_per_dir]
        (artifacts / "test.log").write_text(console_log(names, seed=machine))
        facts = GoldenFacts("b1", "2.3.9-1", "2.3.9")
        judged = judge(distro, artifacts, selection, facts, judging=Judging(None, "tcg"))
        write_run_files(run_dir, run_dir.name, selection, [judged.outcome])
        runs.append(str(run_dir))
    return runs


def merge_seconds(bench: Bench, runs: list[str]) -> float:
    """`klab results merge` through the CLI into a new directory and a new history each
    time (the first merge of a matrix: the real case)."""
    count = iter(range(1000))

    def call() -> None:
        n = next(count)
        out, db = bench.tmp / f"merged{n}", bench.tmp / f"merged{n}.sqlite"
        argv = ["results", "merge", *runs, "--out", str(out), "--no-baseline", "--history", str(db)]
        with contextlib.redirect_stdout(io.StringIO()):
            if main(argv) not in (0, 1):  # 1: the generated consoles hold unexpected FAILs
                raise SystemExit(f"klab {' '.join(argv)} failed")

    call()
    cpu: list[float] = []

    def timed() -> None:
        start = time.process_time()
        call()
        cpu.append(time.process_time() - start)

    wall = median_seconds(timed, bench.repeat)
    # On a loaded host the wall time is mostly waiting for a core; the CPU time is the merge's.
    cpu_ms = statistics.median(cpu) * 1000
    print(f"(merge: median {cpu_ms:.0f} ms of CPU, {wall * 1000:.0f} ms wall)")
    return wall


@measurement("klab results merge: 10 run directories of 150 tests (one 1,500-test run)", 1.0)
def results_merge_shards(bench: Bench) -> float:
    return merge_seconds(bench, merge_inputs(bench, "merge-150", bench.tests // 10))


@measurement("klab results merge: 10 run directories x 1,500 tests (15,000 tests)", 1.0)
def results_merge(bench: Bench) -> float:
    return merge_seconds(bench, merge_inputs(bench, "merge-1500", bench.tests))


# --- the HTML report (issue 15) -------------------------------------------------------------

REPORT_MAX_BYTES = 5 * 1024 * 1024


def report_run(bench: Bench) -> tuple[Path, Path]:
    """A run directory of 5 distros x `tests` tests as the stage writes it (generated consoles
    judged from the artifacts, bpftrace text parsed, a failed test's output), recorded in a
    history of `runs` earlier runs of the same 5 distros."""
    from imagefactory.testrun.collect import GoldenFacts, Judging, judge
    from imagefactory.testrun.run_files import write_run_files
    from imagefactory.testrun.selection import Selection

    traces = REPO / "tests" / "fixtures" / "bpftrace" / "host-emulated"
    db = bench.tmp / "report-history.sqlite"
    fill = fill_history(db, bench.names, bench.runs, len(DISTROS))
    selection = Selection("suite", ("quick",))
    run_id = "20260601T000000Z-report"
    run_dir = bench.tmp / "report-runs" / run_id
    outcomes = []
    with History.open(db) as history:
        history.start_run(run_id, selection=selection.canonical, command="klab test all")
        for n, distro in enumerate(DISTROS):
            artifacts = run_dir / distro
            (artifacts / "bpftrace").mkdir(parents=True)
            (artifacts / "test.log").write_text(console_log(bench.names, seed=n))
            (artifacts / "system.txt").write_text("date: 2026-06-01T00:00:00Z\n")
            for name in ("zio", "txg"):
                text = (traces / f"{name}.txt").read_text()
                (artifacts / "bpftrace" / f"{name}.txt").write_text(text)
            facts = GoldenFacts(f"{distro}-b1", "2.3.9-1", "2.3.9")
            judged = judge(distro, artifacts, selection, facts, judging=Judging(None, "kvm"))
            for verdict in judged.outcome.with_verdict(Verdict.UNEXPECTED_FAILURE):
                out = artifacts / "test_results" / "stamp" / verdict.name.split(" (")[0]
                out.mkdir(parents=True, exist_ok=True)
                (out / "merged").write_text("ERROR: a line\n" * 2000)
            history.record_outcome(run_id, judged.outcome, log_paths=judged.log_paths)
            outcomes.append(judged.outcome)
        history.finish_run(run_id)
    write_run_files(run_dir, run_id, selection, outcomes, history=db)
    print(f"(report history: {bench.runs} runs x {len(DISTROS)} distros filled in {fill:.1f}s)")
    return run_dir, db


@measurement("klab report: 5 distros x 1,500 tests, history of 100 runs (<= 5 MiB)", 2.0)
def report_html(bench: Bench) -> float:
    run_dir, db = report_run(bench)
    out = bench.tmp / "report.html"
    seconds = bench.cli_seconds(["report", str(run_dir), "--history", str(db), "--out", str(out)])
    size = out.stat().st_size
    cells = out.read_text().count('<td class="v-')
    assert cells == len(DISTROS) * bench.tests, f"{cells} matrix cells"
    verdict = "ok" if size <= REPORT_MAX_BYTES else "MISSED"
    print(f"(report.html: {size / 2**20:.2f} MiB, {cells} matrix cells; target <= 5 MiB {verdict})")
    if size > REPORT_MAX_BYTES:
        raise SystemExit(f"report.html is {size} bytes, over {REPORT_MAX_BYTES}")
    return seconds


def main_bench() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--distros", type=int, default=1, choices=range(1, len(DISTROS) + 1))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--only", default="", help="run the measurements whose label has TEXT")
    args = parser.parse_args()

    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), args.tests, args.runs, args.distros, args.repeat)
        chosen = [m for m in MEASUREMENTS if args.only in m.label]
        width = max((len(m.label) for m in chosen), default=0)
        for m in chosen:
            seconds = m.run(bench)
            verdict = ""
            if m.target_s is not None:
                ok = seconds <= m.target_s
                missed += not ok
                verdict = f"target <= {m.target_s:.1f}s {'ok' if ok else 'MISSED'}"
            print(f"{m.label:{width}s} {seconds * 1000:9.1f} ms  {verdict}", flush=True)
    return 1 if missed else 0


# --- the Prometheus exporter (issue 15) ----------------------------------------------------


@measurement("klab metrics serve: one scrape, 100 runs x 1,500 tests (realistic)", 0.5)
def metrics_scrape(bench: Bench) -> float:
    """A whole scrape as Prometheus gets it (`generate_latest` of the exporter's registry):
    the history read, flake rates, timing rises and the exposition text."""
    from prometheus_client import CollectorRegistry, generate_latest

    from imagefactory.metrics.collector import KlabCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(KlabCollector(bench.realistic_history_db, window_runs=100))
    body = generate_latest(registry)
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    assert b"klab_history_up 1.0" in body, "the exporter could not read the bench history"
    print(f"(scrape: {series} series, {len(body) / 2**20:.1f} MiB of exposition text)")
    return median_seconds(lambda: generate_latest(registry), bench.repeat)


if __name__ == "__main__":
    sys.exit(main_bench())
