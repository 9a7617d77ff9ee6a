"""What one distro's test run came to, and the stage's exit status over all distros.

The matrix, JUnit, the Markdown summary and the history all read the same `DistroOutcome`,
so "passed" means one thing everywhere: zts-report found nothing unexpected (or, without a
report, no FAIL/KILLED), the run printed its Results Summary, and at least one test ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# The one exit-status table is errors.py's.
from imagefactory.errors import EXIT_INFRASTRUCTURE, EXIT_OK, EXIT_TEST_FAILURES, EXIT_USAGE
from imagefactory.testrun.absent import with_absent
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


class DistroStatus(StrEnum):
    PASSED = "passed"
    """Every result as expected (absent tests included)."""
    FAILED = "failed"
    """Unexpected results: zts-report's list, or FAIL/KILLED when there was no report."""
    INCOMPLETE = "incomplete"
    """Tests ran but no Results Summary followed: the run was cut short (panic, timeout)."""
    NO_RESULTS = "no-results"
    """zfs-tests.sh ran nothing (setup refused, bad flag, empty selection) yet exits 0."""
    INFRA_ERROR = "infra-error"
    """Clone, boot or collection failed: nothing can be said about the tests."""
    NOT_BUILT = "not-built"
    """The distro has no ztest golden."""


_TEST_FAILURE_STATUSES = {DistroStatus.FAILED, DistroStatus.INCOMPLETE}
_INFRA_STATUSES = {DistroStatus.INFRA_ERROR, DistroStatus.NOT_BUILT, DistroStatus.NO_RESULTS}


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
    expected_reasons: dict[str, str] = field(default_factory=dict)
    report_present: bool = False
    duration_s: float | None = None
    golden_build_id: str | None = None
    zfs_version: str | None = None
    suite_version: str | None = None
    artifacts_dir: str | None = None
    message: str | None = None

    @property
    def counts(self) -> Counts:
        return Counts.from_summary(self.summary)

    def is_unexpected(self, test: TestResult) -> bool:
        """Whether this result counts against the run (absent and SKIP never do by default)."""
        return test.name in self.unexpected

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
    ) -> DistroOutcome:
        tests = with_absent(parsed.tests, absent)
        added_absent = tests[len(parsed.tests) :]
        summary = merge_counts(parsed.summary, summary_counts(added_absent))
        unexpected = parsed.unexpected_failures()
        message: str | None = None
        if not parsed.has_results:
            if added_absent and not parsed.diagnostics:
                status = DistroStatus.PASSED
                message = f"every selected test is absent in zfs-tests {suite_version or '?'}"
            else:
                status = DistroStatus.NO_RESULTS
                message = "; ".join(parsed.diagnostics) or "zfs-tests.sh ran no test"
        elif not parsed.complete:
            status = DistroStatus.INCOMPLETE
            message = "the run stopped before its Results Summary"
        elif unexpected:
            status = DistroStatus.FAILED
            message = f"{len(unexpected)} unexpected result(s)"
        else:
            status = DistroStatus.PASSED
        return cls(
            distro=distro,
            status=status,
            tests=tests,
            summary=summary,
            unexpected=unexpected,
            expected_reasons={e.name: e.detail for e in parsed.expected},
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
    """0 all as expected, 1 test failures, 2 usage/config errors, 3 infrastructure failures.

    When several apply, the least trustworthy wins (2, then 3, then 1): an infrastructure
    failure on one distro means the run as a whole did not answer its question, and the
    matrix still shows which tests failed where.
    """
    if usage_error or not outcomes:
        return EXIT_USAGE
    statuses = {o.status for o in outcomes}
    if statuses & _INFRA_STATUSES:
        return EXIT_INFRASTRUCTURE
    if statuses & _TEST_FAILURE_STATUSES:
        return EXIT_TEST_FAILURES
    return EXIT_OK
