"""What one distro's test run came to, and the stage's exit status over all distros.

The matrix, JUnit, the Markdown summary and the history all read the same `DistroOutcome`,
so "passed" means one thing everywhere: no test's verdict is failing (`judge.py`: no
unexpected failure or crash against the baseline), the Results Summary counts no failure
that no result line shows, the run printed that summary, and at least one test ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# The one exit-status table is errors.py's.
from imagefactory.errors import (
    EXIT_INFRASTRUCTURE,
    EXIT_OK,
    EXIT_TEST_FAILURES,
    EXIT_USAGE,
    worst_exit_status,
)
from imagefactory.testrun.absent import with_absent
from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.judge import Judgement, judge_run, judge_tests
from imagefactory.testrun.results import (
    ABSENT,
    KILLED,
    PASS,
    RERAN,
    SKIP,
    ParsedRun,
    TestResult,
    merge_counts,
    summary_counts,
)
from imagefactory.testrun.verdict import RunContext, TestVerdict, Verdict


class DistroStatus(StrEnum):
    PASSED = "passed"
    """Every result as expected (absent tests included)."""
    FAILED = "failed"
    """An unexpected failure or crash, or a FAIL/KILLED only the Results Summary counts."""
    INCOMPLETE = "incomplete"
    """Tests ran but no Results Summary followed: the run was cut short (panic, timeout)."""
    NO_RESULTS = "no-results"
    """zfs-tests.sh ran nothing (setup refused, bad flag, empty selection) yet exits 0."""
    INFRA_ERROR = "infra-error"
    """Clone, boot or collection failed: nothing can be said about the tests."""
    NOT_BUILT = "not-built"
    """The distro has no ztest golden."""


_EXIT_OF: dict[DistroStatus, int] = {
    DistroStatus.FAILED: EXIT_TEST_FAILURES,
    DistroStatus.INCOMPLETE: EXIT_TEST_FAILURES,
    DistroStatus.INFRA_ERROR: EXIT_INFRASTRUCTURE,
    DistroStatus.NOT_BUILT: EXIT_INFRASTRUCTURE,
    DistroStatus.NO_RESULTS: EXIT_INFRASTRUCTURE,
}
"""A distro's status → its exit status (errors.py's table); PASSED is 0."""


@dataclass(frozen=True, slots=True)
class Counts:
    passed: int = 0
    skipped: int = 0
    failed: int = 0
    killed: int = 0
    absent: int = 0

    @classmethod
    def from_summary(cls, summary: dict[str, int]) -> Counts:
        """FAIL and any unknown result word count as failed; RERAN is a flag, not a result."""
        known = {PASS, SKIP, KILLED, ABSENT, RERAN}
        return cls(
            passed=summary.get(PASS, 0),
            skipped=summary.get(SKIP, 0),
            failed=sum(n for k, n in summary.items() if k not in known),
            killed=summary.get(KILLED, 0),
            absent=summary.get(ABSENT, 0),
        )


@dataclass(slots=True)
class DistroOutcome:
    distro: str
    status: DistroStatus
    tests: list[TestResult] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    """Names of the tests whose verdict is failing (unexpected failure or crash)."""
    report_present: bool = False
    duration_s: float | None = None
    golden_build_id: str | None = None
    zfs_version: str | None = None
    suite_version: str | None = None
    artifacts_dir: str | None = None
    message: str | None = None
    verdicts: dict[str, TestVerdict] = field(default_factory=dict)
    """Each test's verdict, keyed like `TestResult.key`."""
    context: RunContext = field(default_factory=RunContext)
    """What the baseline was matched against (distro, zfs version, kernel, accelerator)."""
    baseline_digest: str | None = None
    """Which baseline files judged this outcome (None: judged without a baseline)."""
    judgement: Judgement = field(default_factory=Judgement)
    """Warnings, entries due for review, zts-report disagreements, summary mismatches."""

    @property
    def counts(self) -> Counts:
        return Counts.from_summary(self.summary)

    @property
    def executed(self) -> bool:
        """Whether any test ran here (absent ones did not)."""
        return any(t.result != ABSENT for t in self.tests) or any(
            n > 0 for k, n in self.summary.items() if k not in (ABSENT, RERAN)
        )

    def verdict_of(self, test: TestResult) -> TestVerdict:
        """The test's verdict; a test added after judging gets its raw (baseline-free) one."""
        found = self.verdicts.get(test.key)
        if found is None:
            found = judge_tests([test], None, self.context).verdicts[test.key]
        return found

    def with_verdict(self, *verdicts: Verdict) -> list[TestVerdict]:
        return [v for v in self.verdicts.values() if v.verdict in verdicts]

    def is_unexpected(self, test: TestResult) -> bool:
        """Whether this result counts against the run (an unexpected failure or a crash)."""
        return self.verdict_of(test).failing

    @classmethod
    def from_parsed(
        cls,
        distro: str,
        parsed: ParsedRun,
        *,
        absent: Iterable[TestResult] = (),
        duration_s: float | None = None,
        golden_build_id: str | None = None,
        zfs_version: str | None = None,
        suite_version: str | None = None,
        artifacts_dir: str | None = None,
        baseline: Baseline | None = None,
        context: RunContext | None = None,
    ) -> DistroOutcome:
        """Judge `parsed` against `baseline` (None: raw results, every FAIL unexpected).

        `context` defaults to what this call knows: the distro and the zfs version.
        """
        if context is None:
            context = RunContext(distro=distro, zfs_version=zfs_version)
        tests = with_absent(parsed.tests, absent)
        added_absent = tests[len(parsed.tests) :]
        summary = merge_counts(parsed.summary, summary_counts(added_absent))
        judgement = judge_run(parsed, baseline, context, tests=tests)
        unexpected = list(dict.fromkeys(t.name for t in tests if judgement.verdicts[t.key].failing))
        message: str | None = None
        if not parsed.has_results:
            if added_absent and not parsed.diagnostics:
                # Not a pass of this distro's own: `stage_exit_status` never exits 0 when
                # no distro executed a test.
                status = DistroStatus.PASSED
                message = f"every selected test is absent in zfs-tests {suite_version or '?'}"
            else:
                status = DistroStatus.NO_RESULTS
                message = "; ".join(parsed.diagnostics) or "zfs-tests.sh ran no test"
        elif not parsed.complete:
            status = DistroStatus.INCOMPLETE
            message = "the run stopped before its Results Summary"
        elif judgement.failed:
            status = DistroStatus.FAILED
            reasons = []
            if unexpected:
                reasons.append(f"{len(unexpected)} unexpected result(s)")
            if judgement.unseen_failures:
                reasons.append(
                    f"the Results Summary counts {judgement.unseen_failures} FAIL/KILLED "
                    "that no result line shows"
                )
            message = "; ".join(reasons)
        else:
            status = DistroStatus.PASSED
        return cls(
            distro=distro,
            status=status,
            tests=tests,
            summary=summary,
            unexpected=unexpected,
            verdicts=judgement.verdicts,
            context=context,
            baseline_digest=baseline.digest if baseline is not None else None,
            judgement=judgement,
            report_present=parsed.report_present,
            duration_s=duration_s if duration_s is not None else parsed.running_time_s,
            golden_build_id=golden_build_id,
            zfs_version=zfs_version,
            suite_version=suite_version,
            artifacts_dir=artifacts_dir,
            message=message,
        )

    @classmethod
    def from_tests(
        cls,
        distro: str,
        tests: Sequence[TestResult],
        *,
        duration_s: float | None = None,
        golden_build_id: str | None = None,
        zfs_version: str | None = None,
        suite_version: str | None = None,
        artifacts_dir: str | None = None,
        baseline: Baseline | None = None,
        context: RunContext | None = None,
    ) -> DistroOutcome:
        """For results that do not come from zfs-tests.sh (recipes: PASS = exit 0)."""
        run = ParsedRun(tests=list(tests), summary=summary_counts(tests), complete=True)
        return cls.from_parsed(
            distro,
            run,
            duration_s=duration_s,
            golden_build_id=golden_build_id,
            zfs_version=zfs_version,
            suite_version=suite_version,
            artifacts_dir=artifacts_dir,
            baseline=baseline,
            context=context,
        )

    @classmethod
    def failed_infrastructure(
        cls,
        distro: str,
        message: str,
        *,
        not_built: bool = False,
        duration_s: float | None = None,
        golden_build_id: str | None = None,
        zfs_version: str | None = None,
        suite_version: str | None = None,
        artifacts_dir: str | None = None,
    ) -> DistroOutcome:
        """A distro whose tests could not run: no golden, or clone/boot/collection failed."""
        return cls(
            distro=distro,
            status=DistroStatus.NOT_BUILT if not_built else DistroStatus.INFRA_ERROR,
            message=message,
            duration_s=duration_s,
            golden_build_id=golden_build_id,
            zfs_version=zfs_version,
            suite_version=suite_version,
            artifacts_dir=artifacts_dir,
        )


def stage_exit_status(outcomes: Sequence[DistroOutcome], *, usage_error: bool = False) -> int:
    """The run's exit status in errors.py's one table: 0 all as expected, 1 test failures,
    2 usage errors, 3 infrastructure failures.

    Each distro contributes its status; `worst_exit_status` picks the least trustworthy (an
    infrastructure failure on one distro means the run as a whole did not answer its
    question, and the matrix still shows which tests failed where).  Expected results,
    flakes, skips and unexpected passes never change the status.

    A run in which no test executed on any distro is never 0.  Where a distro ran nothing
    for a reason of its own (setup refused, no log) it is `no-results` (3).  What is left is
    a selection that every distro's suite reported absent: the question asked names nothing
    these suites have, the same answer the host gives (2) when the goldens' inventories let
    it resolve the selection before booting.
    """
    if usage_error or not outcomes:
        return EXIT_USAGE
    status = worst_exit_status(_EXIT_OF.get(o.status, EXIT_OK) for o in outcomes)
    if status == EXIT_OK and not any(o.executed for o in outcomes):
        return EXIT_USAGE
    return status
