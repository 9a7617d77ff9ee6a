"""Judge what a clone brought home: its artifacts directory becomes a DistroOutcome.

The guest only collects; every verdict is made here, from the files themselves, because
zfs-tests.sh's exit status cannot be trusted (it exits 0 when nothing ran).  Suite runs are
judged from `test.log` with the shared parser, plus the tests the guest's selector found
absent in this suite version (and any test-runner still dropped); recipe runs from
`recipes.tsv` (PASS = exit 0, KILLED = stopped at the timeout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.artifacts import TEST_LOG
from imagefactory.testrun.baseline import Baseline
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


@dataclass(frozen=True)
class GoldenFacts:
    """What the outcome records about the golden a clone came from."""

    build_id: str | None = None
    zfs_version: str | None = None
    suite_version: str | None = None


@dataclass(frozen=True)
class Judging:
    """What verdicts are judged against: the baseline (None: raw results) and the run's facts."""

    baseline: Baseline | None = None
    accel: str | None = None
    """The accelerator the clone booted with (tcg, kvm)."""

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
        golden_build_id=facts.build_id,
        zfs_version=facts.zfs_version,
        suite_version=facts.suite_version,
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
    """`name<TAB>rc<TAB>seconds` lines, as the guest runner writes them."""
    results = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[1].lstrip("-").isdigit():
            continue
        name, rc, seconds = parts[0], int(parts[1]), parts[2]
        result = PASS if rc == 0 else KILLED if rc in _TIMEOUT_CODES else FAIL
        try:
            duration: float | None = float(seconds)
        except ValueError:
            duration = None
        note = None if rc == 0 else f"exit status {rc}"
        results.append(
            TestResult(name=f"{RECIPE_GROUP}/{name}", result=result, duration_s=duration, note=note)
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
        golden_build_id=facts.build_id,
        zfs_version=facts.zfs_version,
        suite_version=facts.suite_version,
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
    if selection.mode == "recipe":
        return judge_recipes(distro, artifacts, selection, facts, duration, judging)
    return judge_suite(distro, artifacts, selection, facts, duration, judging)
