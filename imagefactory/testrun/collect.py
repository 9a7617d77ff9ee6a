"""Judge what a clone brought home: its artifacts directory becomes a DistroOutcome.

The guest only collects; every verdict is made here, from the files themselves, because
zfs-tests.sh's exit status cannot be trusted (it exits 0 when nothing ran).  Suite runs are
judged from `test.log` with the shared parser, plus the tests the guest's selector found
absent in this suite version (and any test-runner still dropped); recipe runs from
`recipes.tsv` (PASS = exit 0, KILLED = stopped at the timeout), one row per attempt.
The guest's retries (--retries) reach the judge as attempts: reruns of failed tests are
later segments of test.log (the parser keeps each test's result per segment), reruns of
recipes later rows of recipes.tsv.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.artifacts import TEST_LOG
from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.bpftrace_files import write_trace_json
from imagefactory.testrun.judge import kernel_from_system_txt
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.results import (
    FAIL,
    KILLED,
    PASS,
    ParsedRun,
    TestResult,
    locate_test_logs,
    parse_file,
)
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.verdict import RunContext

RECIPE_GROUP = "recipes"
_TIMEOUT_CODES = {124, 137}
_RC = re.compile(r"-?[0-9]{1,9}")
_ATTEMPT = re.compile(r"[0-9]{1,3}")


class OutcomeFacts(TypedDict):
    golden_build_id: str | None
    zfs_version: str | None
    suite_version: str | None


@dataclass(frozen=True)
class GoldenFacts:
    """What the outcome records about the golden a clone came from."""

    build_id: str | None = None
    zfs_version: str | None = None
    suite_version: str | None = None

    def outcome_fields(self) -> OutcomeFacts:
        """The keyword arguments every `DistroOutcome` factory takes for these facts."""
        return OutcomeFacts(
            golden_build_id=self.build_id,
            zfs_version=self.zfs_version,
            suite_version=self.suite_version,
        )


@dataclass(frozen=True)
class Judging:
    """What verdicts are judged against: the baseline (None: raw results) and the run's facts."""

    baseline: Baseline | None = None
    accel: str | None = None
    """The accelerator the clone booted with (tcg, kvm)."""
    bpf: tuple[str, ...] | None = None
    """The bpftrace scripts the clone was asked to run (None: whatever traces came back)."""

    def context(self, distro: str, artifacts: Path, facts: GoldenFacts) -> RunContext:
        """The scopes a baseline entry can name, as far as this run knows them."""
        return RunContext(
            distro=distro,
            zfs_version=facts.zfs_version,
            kernel=kernel_from_system_txt(artifacts / "system.txt"),
            accel=self.accel,
        )


@dataclass
class Judged:
    outcome: DistroOutcome
    log_paths: dict[str, str] = field(default_factory=dict)
    selection_empty: bool = False
    """Nothing in the suite matched the selection (a mistyped --run or --group)."""


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def facts_from_guest(artifacts: Path, golden: GoldenFacts) -> GoldenFacts:
    """The golden's own record, completed by golden.json as the guest saw it."""
    guest = _json(artifacts / "golden.json")
    return GoldenFacts(
        build_id=golden.build_id,
        zfs_version=golden.zfs_version or _str(guest.get("zfs_version")),
        suite_version=golden.suite_version or _str(guest.get("suite_version")),
    )


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _relative(paths: dict[str, Path], base: Path) -> dict[str, str]:
    return {name: str(path.relative_to(base)) for name, path in paths.items()}


def judge_suite(
    distro: str,
    artifacts: Path,
    selection: Selection,
    facts: GoldenFacts,
    duration: float | None,
    judging: Judging,
) -> Judged:
    log = artifacts / TEST_LOG
    report = _json(artifacts / "selection.json")
    parsed = parse_file(log) if log.is_file() else _no_log(artifacts)
    absent_names = [str(n) for n in report.get("absent", [])]
    # test-runner drops what it cannot verify; the selector should have caught it first.
    absent_names += [n for n in parsed.removed if n not in absent_names]
    absent = absent_results(absent_names, facts.suite_version or "?")
    outcome = DistroOutcome.from_parsed(
        distro,
        parsed,
        absent=absent,
        duration_s=parsed.running_time_s if parsed.running_time_s is not None else duration,
        **facts.outcome_fields(),
        artifacts_dir=str(artifacts),
        baseline=judging.baseline,
        context=judging.context(distro, artifacts, facts),
    )
    selected = report.get("selected")
    empty = isinstance(selected, list) and not selected and not absent_names
    if empty:
        outcome.status = DistroStatus.NO_RESULTS
        outcome.message = f"no test in this suite matches {selection.canonical}"
    elif not report:
        outcome.message = "; ".join(
            m for m in (outcome.message, "the guest's selector wrote no report") if m
        )
    results_dir = artifacts / "test_results"
    paths = locate_test_logs(results_dir, [t.key for t in parsed.tests])
    return Judged(outcome, _relative(paths, artifacts), empty)


def _no_log(artifacts: Path) -> ParsedRun:
    """An empty parse: no console came back (fine only when the suite was not run)."""
    run = ParsedRun()
    rc = artifacts / "zfs-tests.rc"
    if not (rc.is_file() and rc.read_text().strip() == "not-run"):
        run.diagnostics.append("the guest brought back no test.log")
    return run


def read_recipe_results(path: Path) -> list[TestResult]:
    """`name<TAB>rc<TAB>seconds<TAB>attempt` lines, one per attempt, as the guest writes them
    (older runners wrote no attempt column); malformed lines are skipped.

    A recipe's attempts become one result: the last attempt decides it and every attempt's
    result is kept (`attempts`), so a failure fixed by a retry reaches the judge as a flake.
    """
    rows: dict[str, list[tuple[int, str, float | None, int]]] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) not in (3, 4) or not parts[0] or not _RC.fullmatch(parts[1]):
            continue
        attempt = int(parts[3]) if len(parts) == 4 and _ATTEMPT.fullmatch(parts[3]) else 0
        rc = int(parts[1])
        result = PASS if rc == 0 else KILLED if rc in _TIMEOUT_CODES else FAIL
        try:
            duration: float | None = float(parts[2])
        except ValueError:
            duration = None
        if duration is not None and not math.isfinite(duration):
            duration = None
        rows.setdefault(parts[0], []).append((attempt, result, duration, rc))
    results = []
    for name, attempts in rows.items():
        attempts.sort(key=lambda row: row[0])  # stable: rows without a number keep their order
        _, result, duration, rc = attempts[-1]
        codes = [str(row[3]) for row in attempts]
        note = None if codes == ["0"] else f"exit status {', then '.join(codes)}"
        results.append(
            TestResult(
                name=f"{RECIPE_GROUP}/{name}",
                result=result,
                duration_s=duration,
                note=note,
                attempts=tuple(row[1] for row in attempts),
            )
        )
    return results


def judge_recipes(
    distro: str,
    artifacts: Path,
    selection: Selection,
    facts: GoldenFacts,
    duration: float | None,
    judging: Judging,
) -> Judged:
    table = artifacts / "recipes.tsv"
    tests = read_recipe_results(table) if table.is_file() else []
    ran = {t.name for t in tests}
    # A recipe the guest never reached (the runner died) is not a pass.
    missing = [n for n in selection.items if f"{RECIPE_GROUP}/{n}" not in ran]
    tests += [
        TestResult(name=f"{RECIPE_GROUP}/{n}", result=KILLED, note="did not run to the end")
        for n in missing
    ]
    outcome = DistroOutcome.from_tests(
        distro,
        tests,
        duration_s=duration,
        **facts.outcome_fields(),
        artifacts_dir=str(artifacts),
        baseline=judging.baseline,
        context=judging.context(distro, artifacts, facts),
    )
    if not table.is_file():
        outcome.status = DistroStatus.NO_RESULTS
        outcome.message = "the guest brought back no recipe results"
    paths = {
        f"{RECIPE_GROUP}/{n}": f"recipes/{n}.log"
        for n in selection.items
        if (artifacts / "recipes" / f"{n}.log").is_file()
    }
    return Judged(outcome, paths)


def judge(
    distro: str,
    artifacts: Path,
    selection: Selection,
    golden: GoldenFacts,
    *,
    duration: float | None = None,
    judging: Judging | None = None,
) -> Judged:
    """The outcome of one distro from its brought-home artifacts directory."""
    facts = facts_from_guest(artifacts, golden)
    judging = judging or Judging()
    write_trace_json(artifacts, judging.bpf)  # bpftrace/<name>.json, for reports and metrics
    if selection.mode == "recipe":
        return judge_recipes(distro, artifacts, selection, facts, duration, judging)
    return judge_suite(distro, artifacts, selection, facts, duration, judging)
