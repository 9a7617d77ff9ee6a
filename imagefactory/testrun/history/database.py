"""`History`: the one object commands and the test stage use to reach the history file.

It opens the file for writing (the test stage, `results judge --record`: migrated in
place, every page checked) or only for reading (every query command: `mode=ro`, nothing
written).  A read-only file at an older schema version is copied into memory and upgraded
there, so an old history on a read-only mount reads like a current one.  Every method
turns SQLite's errors into the one-line `InfrastructureError` of
`connection.history_error`, naming the file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from imagefactory.errors import ImageFactoryError
from imagefactory.log import get_logger
from imagefactory.testrun.history import queries, writing
from imagefactory.testrun.history.connection import (
    connect,
    connect_readonly,
    damaged,
    history_error,
)
from imagefactory.testrun.history.diff import RunDiff, diff_runs, last_pair
from imagefactory.testrun.history.flaky import FlakyStat, flaky_stats
from imagefactory.testrun.history.location import default_db_path
from imagefactory.testrun.history.queries import StoredRun, StoredTest
from imagefactory.testrun.history.rows import DistroRow, TestRow
from imagefactory.testrun.history.schema import (
    SCHEMA_VERSION,
    migrate,
    missing_parts,
    refuse_newer,
    schema_version,
)
from imagefactory.testrun.history.trends import (
    TimingRise,
    TimingThresholds,
    timing_markdown,
    timing_rises,
)
from imagefactory.testrun.history.values import RunRef

if TYPE_CHECKING:  # reading the history must not load the judge (pydantic baselines)
    from imagefactory.testrun.outcome import DistroOutcome

log = get_logger(__name__)  # structlog loads on first use: reading logs nothing

P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[Concatenate[History, P], R]) -> Callable[Concatenate[History, P], R]:
    """SQLite errors inside `method` become the history's one-line error."""

    def wrapper(self: History, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise history_error(self.path, exc) from exc

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    return wrapper


class History:
    """The history database; open with `History.open()` and use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool = False) -> None:
        self.conn = conn
        self.path = path
        self.readonly = readonly

    @classmethod
    def open(cls, path: Path | None = None, *, readonly: bool = False) -> History:
        """Open (and, for writing, create or upgrade) the history at `path`.

        `readonly=True` needs an existing file and never writes to it.
        """
        target = path if path is not None else default_db_path()
        conn = connect_readonly(target) if readonly else connect(target)
        try:
            if readonly:
                conn = _readable(conn, target)
            else:
                migrate(conn, path=target)
                _check_pages(conn, target)
            _check_schema(conn, target)
        except sqlite3.Error as exc:
            conn.close()
            raise history_error(target, exc) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, target, readonly=readonly)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    @_guarded
    def start_run(
        self,
        run_id: str,
        *,
        selection: str,
        command: Sequence[str] | str,
        started: datetime | None = None,
    ) -> None:
        """Record that a run began: `selection` is the canonical what-ran (`suite=quick`)."""
        writing.start_run(self.conn, run_id, selection=selection, command=command, started=started)

    @_guarded
    def finish_run(self, run_id: str, finished: datetime | None = None) -> None:
        writing.finish_run(self.conn, run_id, finished)

    @_guarded
    def record_outcome(
        self,
        run_id: str,
        outcome: DistroOutcome,
        *,
        log_paths: Mapping[str, str] | None = None,
        lineage: str | None = None,
    ) -> None:
        """Store one distro's outcome and its tests (replacing an earlier record of it).

        `log_paths` maps a test's key (`TestResult.key`) to its output dir, as found by
        `results.locate_test_logs`, relative to the distro's artifacts dir or absolute.
        `lineage` is the goldens' lineage (`ztest` for the test stage), None when unknown
        (a log judged from elsewhere).
        """
        writing.record_outcome(self.conn, run_id, outcome, log_paths=log_paths, lineage=lineage)

    @_guarded
    def record_outcomes(
        self,
        run_id: str,
        outcomes: Sequence[tuple[DistroOutcome, Mapping[str, str]]],
        *,
        lineage: str | None = None,
    ) -> None:
        """`record_outcome` for several distros (each with its log paths), one transaction."""
        writing.record_outcomes(self.conn, run_id, outcomes, lineage=lineage)

    # -- reading ---------------------------------------------------------------------------

    @_guarded
    def runs(self, *, distro: str | None = None, last: int = 10) -> list[DistroRow]:
        return queries.runs(self.conn, distro=distro, last=last)

    @_guarded
    def test_history(
        self, test: str, *, distro: str | None = None, last: int = 10
    ) -> list[TestRow]:
        return queries.test_history(self.conn, test, distro=distro, last=last)

    @_guarded
    def failed_tests(
        self, *, selection: str | None = None, distro: str | None = None
    ) -> dict[str, list[str]]:
        return queries.failed_tests(self.conn, selection=selection, distro=distro)

    @_guarded
    def resolve_run(self, ref: RunRef) -> StoredRun:
        return queries.resolve_run(self.conn, ref, self.path)

    @_guarded
    def run_tests(self, run: StoredRun) -> dict[str, dict[str, StoredTest]]:
        """Every test row of a run: distro → key → row."""
        return queries.tests_of(self.conn, run.id)

    @_guarded
    def run_distros(self, run: StoredRun) -> dict[str, DistroRow]:
        return queries.distro_context(self.conn, run.id)

    @_guarded
    def flaky(self, *, last: int, distro: str | None = None) -> tuple[list[FlakyStat], int]:
        """Tests that failed at least once in the last `last` runs, and the runs counted."""
        return flaky_stats(self.conn, last=last, distro=distro)

    @_guarded
    def diff(
        self,
        before: StoredRun,
        after: StoredRun,
        *,
        distro: str | None = None,
        timing: TimingThresholds | None = None,
    ) -> RunDiff:
        result = diff_runs(self.conn, before, after, distro=distro)
        result.timing, result.timing_compared = timing_rises(
            self.conn, after.id, timing or TimingThresholds(), distro=distro
        )
        return result

    @_guarded
    def diff_last(
        self,
        selection: str | None = None,
        *,
        distro: str | None = None,
        timing: TimingThresholds | None = None,
    ) -> RunDiff | None:
        """What changed between the last run (of `selection`, that ran `distro`) and the
        previous run of the same selection; None when the history is empty."""
        previous, current = last_pair(self.conn, selection=selection, distro=distro)
        if current is None:
            return None
        if previous is None:
            return RunDiff(current.selection, current.run_id, None, [], [])
        return self.diff(previous, current, distro=distro, timing=timing)

    @_guarded
    def timing(
        self, run_id: str, thresholds: TimingThresholds | None = None
    ) -> tuple[list[TimingRise], int]:
        """The tests of run `run_id` that got slower, and how many were compared."""
        run = queries.resolve_run(self.conn, RunRef(run_id), self.path)
        return timing_rises(self.conn, run.id, thresholds or TimingThresholds())

    def timing_section(self, run_id: str, thresholds: TimingThresholds | None = None) -> list[str]:
        """summary.md's "Timing" section for run `run_id`.  Never raises: the run's tests
        are over by now, and their report must be written whatever the history says."""
        try:
            rises, compared = self.timing(run_id, thresholds)
        except ImageFactoryError as exc:
            log.warning("history.timing_failed", run_id=run_id, error=str(exc))
            return ["## Timing", "", f"Not available: {exc}"]
        return timing_markdown(rises, compared, thresholds)


def _readable(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """`conn` itself when its schema is current, else an upgraded copy in memory."""
    version = schema_version(conn)
    refuse_newer(version, path)
    if version == SCHEMA_VERSION:
        return conn
    if version == 0 and not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
        raise damaged(path, "it holds no table (an empty file is not a test history)")
    missing = missing_parts(conn, version)
    if missing:
        raise damaged(path, f"missing {', '.join(missing)}")
    memory = sqlite3.connect(":memory:", isolation_level=None)
    conn.backup(memory)
    conn.close()
    migrate(memory, path=path)
    log.info("history.upgraded_in_memory", path=str(path), version=version, to=SCHEMA_VERSION)
    return memory


def _check_pages(conn: sqlite3.Connection, path: Path) -> None:
    """A writer first checks every page (`quick_check`, ~0.2 s for 100 runs of 1,500 tests):
    rows added to a damaged file could be lost with it, so a run is refused before it starts.
    Readers skip this: a damaged page they touch is reported when they touch it."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        first = " ".join(problems[0].split())
        raise damaged(path, f"{first}{' ...' if len(problems) > 1 else ''} (PRAGMA quick_check)")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    """A dropped table or column is damage, found at open rather than by some query later."""
    missing = missing_parts(conn, schema_version(conn))
    if missing:
        raise damaged(path, f"missing {', '.join(missing)}")


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique-enough run id: `20260422T033417Z-1a2b3c` (UTC + random suffix)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"
