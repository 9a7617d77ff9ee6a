"""Recording runs: a run's start and end, and each distro's judged outcome with its tests.

Each test row keeps its verdict (what the run judged), every attempt's result word (a test
retried after a failure keeps its failed attempts: the numerator of its flake rate) and the
verdict's reason; each distro row keeps what timing and baselines are scoped by: kernel,
accelerator, lineage and the baseline files' digest.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from imagefactory.errors import UsageError
from imagefactory.testrun.results import PASS, TestResult, is_failure
from imagefactory.testrun.verdict import FAILING, TestVerdict, Verdict

if TYPE_CHECKING:  # reading the history must not load the judge (pydantic baselines)
    from imagefactory.testrun.outcome import DistroOutcome


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def start_run(
    conn: sqlite3.Connection,
    run_id: str,
    *,
    selection: str,
    command: Sequence[str] | str,
    started: datetime | None = None,
) -> None:
    text = command if isinstance(command, str) else " ".join(command)
    try:
        conn.execute(
            "INSERT INTO runs (run_id, started, selection, command) VALUES (?, ?, ?, ?)",
            (run_id, iso(started or now()), selection, text),
        )
    except sqlite3.IntegrityError as exc:
        raise UsageError(f"run {run_id} is already in the test history") from exc


def finish_run(conn: sqlite3.Connection, run_id: str, finished: datetime | None = None) -> None:
    conn.execute("UPDATE runs SET finished = ? WHERE run_id = ?", (iso(finished or now()), run_id))


@dataclass(frozen=True, slots=True)
class Judged:
    """What one test row stores beyond its result: verdict, reason and attempts."""

    verdict: str
    reason: str | None
    attempts: tuple[str, ...]
    """Every attempt's result word, first to last."""
    count: int
    failed: int
    """Attempts that failed (FAIL, KILLED...): > 0 counts the run in the test's flake rate."""


def judged_test(outcome: DistroOutcome, test: TestResult) -> Judged:
    """The verdict the run gave `test` (judged raw, with no baseline, when the outcome was
    built without judging it)."""
    return _judged(outcome.verdict_of(test), test)


def _judged(given: TestVerdict, test: TestResult) -> Judged:
    attempts = tuple(given.attempts) or tuple(test.attempts) or (test.result,)
    failed = sum(1 for word in attempts if word != PASS and is_failure(word))  # PASS: most
    count = len(attempts)
    if test.reran and count == 1:
        # test-runner's RERAN without the first attempt's line: it failed once, then reran.
        count, failed = 2, failed + 1
    if given.verdict is Verdict.FLAKY and failed == 0:
        failed = 1  # flaky means a failed attempt, even when its word was not kept
    return Judged(given.verdict.value, given.reason, attempts, count, failed)


def record_outcome(
    conn: sqlite3.Connection,
    run_id: str,
    outcome: DistroOutcome,
    *,
    log_paths: Mapping[str, str] | None = None,
    lineage: str | None = None,
) -> None:
    """Store one distro's outcome and its tests (replacing an earlier record of it)."""
    record_outcomes(conn, run_id, [(outcome, log_paths or {})], lineage=lineage)


def record_outcomes(
    conn: sqlite3.Connection,
    run_id: str,
    outcomes: Sequence[tuple[DistroOutcome, Mapping[str, str]]],
    *,
    lineage: str | None = None,
) -> None:
    """Store distros' outcomes, each with its log paths, in one transaction (replacing
    earlier records of them): all of a merged run's rows, or none."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise UsageError(f"run {run_id} is not in the test history (start_run first)")
        for outcome, paths in outcomes:
            _insert_outcome(conn, row[0], outcome, paths, lineage)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _insert_outcome(
    conn: sqlite3.Connection,
    run: int,
    outcome: DistroOutcome,
    paths: Mapping[str, str],
    lineage: str | None,
) -> None:
    counts = outcome.counts
    context = outcome.context
    conn.execute("DELETE FROM distro_results WHERE run = ? AND distro = ?", (run, outcome.distro))
    cursor = conn.execute(
        """INSERT INTO distro_results (run, distro, golden_build_id, zfs_version,
            suite_version, status, duration_s, artifacts_dir, message, passed, skipped,
            failed, killed, absent, kernel, accel, baseline_digest, lineage)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            run,
            outcome.distro,
            outcome.golden_build_id,
            outcome.zfs_version,
            outcome.suite_version,
            str(outcome.status),
            outcome.duration_s,
            outcome.artifacts_dir,
            outcome.message,
            counts.passed,
            counts.skipped,
            counts.failed,
            counts.killed,
            counts.absent,
            context.kernel,
            context.accel,
            outcome.baseline_digest,
            lineage,
        ),
    )
    conn.executemany(
        """INSERT OR REPLACE INTO test_results (distro_result, test, identifier, result,
            duration_s, reran, log_path, unexpected, note, verdict, reason, attempts,
            failed_attempts, attempt_results)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [_test_row(cursor.lastrowid, outcome, t, paths) for t in outcome.tests],
    )


def _test_row(
    distro_result: int | None, outcome: DistroOutcome, test: TestResult, paths: Mapping[str, str]
) -> tuple[object, ...]:
    key = test.key
    given = outcome.verdicts.get(key) or outcome.verdict_of(test)
    judged = _judged(given, test)
    return (
        distro_result,
        test.name,
        test.identifier or "",
        test.result,
        test.duration_s,
        int(test.reran),
        paths.get(key),
        int(given.verdict in FAILING),
        test.note,
        judged.verdict,
        judged.reason,
        judged.count,
        judged.failed,
        " ".join(judged.attempts) if len(judged.attempts) > 1 else None,
    )
