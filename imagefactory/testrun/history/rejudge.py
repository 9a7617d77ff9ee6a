"""Judge a stored run again against today's baselines, and say what changed.

The history keeps every test's result words (all attempts) and each distro's context
(distro, zfs version, kernel, accelerator), which is all `judge_tests` needs: a baseline
entry added or retired since the run shows here as a verdict that moved.  What only the
console knew (zts-report's sections, a Results Summary counting a failure no line showed)
is not stored; the verdicts are judged from the rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.history.database import History
from imagefactory.testrun.history.queries import StoredRun, StoredTest
from imagefactory.testrun.judge import judge_tests
from imagefactory.testrun.results import PASS, TestResult
from imagefactory.testrun.verdict import RunContext, TestVerdict


@dataclass(frozen=True, slots=True)
class VerdictChange:
    distro: str
    before: str | None
    """The verdict recorded with the run (None: recorded before verdicts were kept)."""
    after: TestVerdict

    def to_json(self) -> dict[str, Any]:
        return {"distro": self.distro, "before": self.before, **self.after.to_json()}


@dataclass
class Rejudged:
    run: StoredRun
    baseline: Baseline | None
    recorded_digests: dict[str, str | None] = field(default_factory=dict)
    """Per distro, the digest of the baseline that judged the run when it was recorded."""
    verdicts: dict[str, dict[str, TestVerdict]] = field(default_factory=dict)
    changes: list[VerdictChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failing(self) -> list[tuple[str, TestVerdict]]:
        return [(d, v) for d, tests in self.verdicts.items() for v in tests.values() if v.failing]


def _as_result(row: StoredTest) -> TestResult:
    attempts = row.attempts
    if row.reran and len(attempts) == 1 and row.result == PASS:
        # A RERAN row from before attempts were kept: test-runner reruns a test because it
        # failed, and which failing word it printed first is lost. FAIL is the safe guess.
        attempts = ("FAIL", PASS)
    return TestResult(
        row.test,
        row.result,
        duration_s=row.duration_s,
        reran=row.reran,
        identifier=row.identifier or None,
        attempts=attempts,
    )


def rejudge(
    history: History,
    run: StoredRun,
    baseline: Baseline | None,
    *,
    distro: str | None = None,
    today: date | None = None,
) -> Rejudged:
    """Every test of `run` (on `distro`, if given) judged against `baseline` now."""
    rows = history.run_tests(run)
    result = Rejudged(run, baseline)
    for name, context_row in history.run_distros(run).items():
        if distro is not None and name != distro:
            continue
        result.recorded_digests[name] = context_row.baseline_digest
        tests = rows.get(name, {})
        context = RunContext(name, context_row.zfs_version, context_row.kernel, context_row.accel)
        judgement = judge_tests(
            [_as_result(r) for r in tests.values()], baseline, context, today=today
        )
        result.verdicts[name] = judgement.verdicts
        result.warnings += [f"{name}: {w}" for w in judgement.warnings]
        for key, verdict in judgement.verdicts.items():
            before = tests[key].verdict if key in tests else None
            if before != verdict.verdict.value:
                result.changes.append(VerdictChange(name, before, verdict))
    return result
