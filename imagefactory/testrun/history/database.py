"""The test history: every run, per distro and per test, in one SQLite file.

The history answers the questions a matrix alone cannot: since when does this test fail on
Ubuntu, what changed since the last run of the same selection, which tests to rerun.  It is
stdlib sqlite3 (one file, no server) with a versioned schema: `PRAGMA user_version` holds the
version and `MIGRATIONS` are ordered steps, each applied in its own transaction, so a file
written by an older klab is upgraded in place and a newer file is refused instead of misread.

Location: `/var/lib/klab/history.sqlite` as root, `$XDG_STATE_HOME/klab/history.sqlite`
otherwise; `KLAB_STATE_DIR` (or an explicit path) overrides both.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import structlog

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import ABSENT, PASS, SKIP

log = structlog.get_logger(__name__)

DB_NAME = "history.sqlite"


def state_dir() -> Path:
    """klab's state directory: KLAB_STATE_DIR, /var/lib/klab as root, else the XDG state dir."""
    override = os.environ.get("KLAB_STATE_DIR")
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return Path("/var/lib/klab")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "klab"


def default_db_path() -> Path:
    return state_dir() / DB_NAME


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs, per-distro results and per-test rows",
        (
            """CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                run_id TEXT NOT NULL UNIQUE,
                started TEXT NOT NULL,
                finished TEXT,
                selection TEXT NOT NULL,
                command TEXT NOT NULL
            )""",
            "CREATE INDEX runs_started ON runs (started, id)",
            "CREATE INDEX runs_selection ON runs (selection, started, id)",
            """CREATE TABLE distro_results (
                id INTEGER PRIMARY KEY,
                run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
                distro TEXT NOT NULL,
                golden_build_id TEXT,
                zfs_version TEXT,
                suite_version TEXT,
                status TEXT NOT NULL,
                duration_s REAL,
                artifacts_dir TEXT,
                message TEXT,
                UNIQUE (run, distro)
            )""",
            "CREATE INDEX distro_results_distro ON distro_results (distro, run)",
            """CREATE TABLE test_results (
                id INTEGER PRIMARY KEY,
                distro_result INTEGER NOT NULL REFERENCES distro_results (id) ON DELETE CASCADE,
                test TEXT NOT NULL,
                identifier TEXT NOT NULL DEFAULT '',
                result TEXT NOT NULL,
                duration_s REAL,
                reran INTEGER NOT NULL DEFAULT 0,
                log_path TEXT,
                UNIQUE (distro_result, test, identifier)
            )""",
            "CREATE INDEX test_results_test ON test_results (test, distro_result)",
        ),
    ),
    Migration(
        2,
        "per-distro counts (quiet runs print passes only in their summary) and verdicts",
        (
            "ALTER TABLE distro_results ADD COLUMN passed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE distro_results ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE distro_results ADD COLUMN failed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE distro_results ADD COLUMN killed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE distro_results ADD COLUMN absent INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE test_results ADD COLUMN unexpected INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE test_results ADD COLUMN note TEXT",
            # Rows from version 1 kept no summary: count their test rows instead.
            """UPDATE distro_results SET
                passed = (SELECT count(*) FROM test_results t
                          WHERE t.distro_result = distro_results.id AND t.result = 'PASS'),
                skipped = (SELECT count(*) FROM test_results t
                           WHERE t.distro_result = distro_results.id AND t.result = 'SKIP'),
                killed = (SELECT count(*) FROM test_results t
                          WHERE t.distro_result = distro_results.id AND t.result = 'KILLED'),
                absent = (SELECT count(*) FROM test_results t
                          WHERE t.distro_result = distro_results.id AND t.result = 'ABSENT'),
                failed = (SELECT count(*) FROM test_results t
                          WHERE t.distro_result = distro_results.id
                          AND t.result NOT IN ('PASS', 'SKIP', 'KILLED', 'ABSENT'))""",
            # Version 1 kept no zts-report verdict: every FAIL/KILLED counted against a run.
            """UPDATE test_results SET unexpected = 1
               WHERE result NOT IN ('PASS', 'SKIP', 'ABSENT')""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations above the file's version up to `target`; return the new version.

    Each step runs in its own `BEGIN IMMEDIATE` transaction together with its user_version
    bump, so a crash leaves the file at the last complete version, and two klab processes
    opening the same file at once do not both apply a step.
    """
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise InfrastructureError(
            f"the test history uses schema version {current}, newer than this klab "
            f"knows ({SCHEMA_VERSION})",
            hint="use a newer klab, or point KLAB_STATE_DIR at another directory",
        )
    fresh = current == 0
    for step in MIGRATIONS:
        if step.version <= current or step.version > target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= step.version:
                conn.execute("ROLLBACK")
                continue
            for statement in step.statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step.version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # A new file passing through every step is routine; upgrading a kept one is news.
        report = log.debug if fresh else log.info
        report("history.migrated", version=step.version, step=step.description)
        current = step.version
    return current


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with foreign keys on."""
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        conn.execute("PRAGMA foreign_keys = ON")
        if str(path) != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise InfrastructureError(
            f"cannot open the test history {path}: {exc}",
            hint="check the permissions, or set KLAB_STATE_DIR to a writable directory",
        ) from exc
    return conn


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class DistroRow:
    """One distro's part of one run, as `klab history` lists it."""

    run_id: str
    started: str
    selection: str
    distro: str
    status: str
    golden_build_id: str | None
    zfs_version: str | None
    suite_version: str | None
    duration_s: float | None
    passed: int
    skipped: int
    failed: int
    killed: int
    absent: int
    artifacts_dir: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class TestRow:
    """One test's result in one run on one distro."""

    __test__ = False

    run_id: str
    started: str
    distro: str
    zfs_version: str | None
    test: str
    identifier: str
    result: str
    duration_s: float | None
    reran: bool
    unexpected: bool
    log_path: str | None

    @property
    def key(self) -> str:
        return self.test if not self.identifier else f"{self.test} ({self.identifier})"


@dataclass(frozen=True, slots=True)
class TestChange:
    """A test whose result differs between two runs; None means not in that run."""

    __test__ = False

    distro: str
    test: str
    before: str | None
    after: str | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        if self.after == PASS:
            return "fixed"
        if self.before == PASS:
            return "broke"
        return "changed"


@dataclass(frozen=True, slots=True)
class RunDiff:
    selection: str
    current: str
    previous: str | None
    changes: list[TestChange]
    status_changes: list[tuple[str, str | None, str | None]]


_DISTRO_COLUMNS = """r.run_id, r.started, r.selection, d.distro, d.status, d.golden_build_id,
    d.zfs_version, d.suite_version, d.duration_s, d.passed, d.skipped, d.failed, d.killed,
    d.absent, d.artifacts_dir, d.message"""


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class History:
    """The history database; open with `History.open()` and use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None) -> History:
        target = path if path is not None else default_db_path()
        conn = connect(target)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, target)

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

    def start_run(
        self,
        run_id: str,
        *,
        selection: str,
        command: Sequence[str] | str,
        started: datetime | None = None,
    ) -> None:
        """Record that a run began: `selection` is the canonical what-ran (`suite=quick`)."""
        text = command if isinstance(command, str) else " ".join(command)
        try:
            self.conn.execute(
                "INSERT INTO runs (run_id, started, selection, command) VALUES (?, ?, ?, ?)",
                (run_id, _iso(started or _now()), selection, text),
            )
        except sqlite3.IntegrityError as exc:
            raise UsageError(f"run {run_id} is already in the test history") from exc

    def finish_run(self, run_id: str, finished: datetime | None = None) -> None:
        self.conn.execute(
            "UPDATE runs SET finished = ? WHERE run_id = ?", (_iso(finished or _now()), run_id)
        )

    def record_outcome(
        self,
        run_id: str,
        outcome: DistroOutcome,
        *,
        log_paths: Mapping[str, str] | None = None,
    ) -> None:
        """Store one distro's outcome and its tests (replacing an earlier record of it).

        `log_paths` maps a test's key (`TestResult.key`) to its output dir, as found by
        `results.locate_test_logs`, relative to the distro's artifacts dir or absolute.
        """
        paths = log_paths or {}
        counts = outcome.counts
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise UsageError(f"run {run_id} is not in the test history (start_run first)")
            conn.execute(
                "DELETE FROM distro_results WHERE run = ? AND distro = ?", (row[0], outcome.distro)
            )
            cursor = conn.execute(
                """INSERT INTO distro_results (run, distro, golden_build_id, zfs_version,
                    suite_version, status, duration_s, artifacts_dir, message, passed, skipped,
                    failed, killed, absent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    row[0],
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
                ),
            )
            distro_result = cursor.lastrowid
            unexpected = set(outcome.unexpected)
            conn.executemany(
                """INSERT OR REPLACE INTO test_results (distro_result, test, identifier, result,
                    duration_s, reran, log_path, unexpected, note)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        distro_result,
                        t.name,
                        t.identifier or "",
                        t.result,
                        t.duration_s,
                        int(t.reran),
                        paths.get(t.key),
                        int(t.name in unexpected),
                        t.note,
                    )
                    for t in outcome.tests
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reading ---------------------------------------------------------------------------

    def _last_run_ids(self, last: int, *, distro: str | None, selection: str | None) -> list[int]:
        clauses: list[str] = []
        params: list[object] = []
        if distro is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM distro_results d WHERE d.run = r.id AND d.distro = ?)"
            )
            params.append(distro)
        if selection is not None:
            clauses.append("r.selection = ?")
            params.append(selection)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.conn.execute(
            f"SELECT r.id FROM runs r {where} ORDER BY r.started DESC, r.id DESC LIMIT ?",
            (*params, last),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def runs(self, *, distro: str | None = None, last: int = 10) -> list[DistroRow]:
        """The last `last` runs (newest first), one row per distro; only `distro` if given."""
        ids = self._last_run_ids(last, distro=distro, selection=None)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        params: list[object] = list(ids)
        extra = ""
        if distro is not None:
            extra = "AND d.distro = ?"
            params.append(distro)
        rows = self.conn.execute(
            f"""SELECT {_DISTRO_COLUMNS} FROM runs r JOIN distro_results d ON d.run = r.id
                WHERE r.id IN ({marks}) {extra}
                ORDER BY r.started DESC, r.id DESC, d.distro""",
            params,
        ).fetchall()
        return [DistroRow(*row) for row in rows]

    def test_history(
        self, test: str, *, distro: str | None = None, last: int = 10
    ) -> list[TestRow]:
        """A test's results over the last `last` runs that ran it, newest first.

        `test` is a name (`cli_root/zpool_create/zpool_create_001_pos`), a bare basename
        (`zpool_create_001_pos`) or a glob (`cli_root/zpool_create/*`).
        """
        if any(c in test for c in "*?["):
            match, params = "t.test GLOB ?", [test]
        elif "/" in test:
            match, params = "t.test = ?", [test]
        else:
            match, params = (
                "(t.test = ? OR t.test LIKE ? ESCAPE '\\')",
                [test, "%/" + _like_escape(test)],
            )
        extra = ""
        if distro is not None:
            extra = "AND d.distro = ?"
            params.append(distro)
        rows = self.conn.execute(
            f"""SELECT r.run_id, r.started, d.distro, d.zfs_version, t.test, t.identifier,
                    t.result, t.duration_s, t.reran, t.unexpected, t.log_path
                FROM test_results t
                JOIN distro_results d ON t.distro_result = d.id
                JOIN runs r ON d.run = r.id
                WHERE {match} {extra}
                ORDER BY r.started DESC, r.id DESC, d.distro, t.test, t.identifier""",
            params,
        ).fetchall()
        result: list[TestRow] = []
        seen_runs: list[str] = []
        for row in rows:
            if row[0] not in seen_runs:
                if len(seen_runs) == last:
                    break
                seen_runs.append(row[0])
            run_id, started, distro_name, zfs, name, ident, res, dur, reran, unexp, path = row
            result.append(
                TestRow(
                    run_id=run_id,
                    started=started,
                    distro=distro_name,
                    zfs_version=zfs,
                    test=name,
                    identifier=ident,
                    result=res,
                    duration_s=dur,
                    reran=bool(reran),
                    unexpected=bool(unexp),
                    log_path=path,
                )
            )
        return result

    def _tests_of(self, run: int) -> dict[tuple[str, str], str]:
        rows = self.conn.execute(
            """SELECT d.distro, t.test, t.identifier, t.result FROM distro_results d
               JOIN test_results t ON t.distro_result = d.id WHERE d.run = ?""",
            (run,),
        ).fetchall()
        return {
            (distro, test if not ident else f"{test} ({ident})"): result
            for distro, test, ident, result in rows
        }

    def _statuses_of(self, run: int) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT distro, status FROM distro_results WHERE run = ?", (run,)
        ).fetchall()
        return {distro: status for distro, status in rows}

    def diff_last(self, selection: str | None = None) -> RunDiff | None:
        """What changed between the last run (of `selection`, if given) and the previous run
        of the same selection; None when the history is empty."""
        last = self.conn.execute(
            "SELECT id, run_id, selection FROM runs"
            + (" WHERE selection = ?" if selection is not None else "")
            + " ORDER BY started DESC, id DESC LIMIT 1",
            (selection,) if selection is not None else (),
        ).fetchone()
        if last is None:
            return None
        current_id, current_run, current_selection = last
        previous = self.conn.execute(
            """SELECT id, run_id FROM runs WHERE selection = ? AND id != ?
               AND (started < (SELECT started FROM runs WHERE id = ?)
                    OR (started = (SELECT started FROM runs WHERE id = ?) AND id < ?))
               ORDER BY started DESC, id DESC LIMIT 1""",
            (current_selection, current_id, current_id, current_id, current_id),
        ).fetchone()
        if previous is None:
            return RunDiff(current_selection, current_run, None, [], [])
        before, after = self._tests_of(previous[0]), self._tests_of(current_id)
        changes = [
            TestChange(distro, test, before.get((distro, test)), after.get((distro, test)))
            for distro, test in sorted(before.keys() | after.keys())
            if before.get((distro, test)) != after.get((distro, test))
        ]
        old_status, new_status = self._statuses_of(previous[0]), self._statuses_of(current_id)
        status_changes = [
            (distro, old_status.get(distro), new_status.get(distro))
            for distro in sorted(old_status.keys() | new_status.keys())
            if old_status.get(distro) != new_status.get(distro)
        ]
        return RunDiff(current_selection, current_run, previous[1], changes, status_changes)

    def failed_tests(
        self, *, selection: str | None = None, distro: str | None = None
    ) -> dict[str, list[str]]:
        """The unexpected results of the last run (of `selection`), per distro, for
        `klab test --rerun-failed`; names, so they can be passed to `--run`."""
        ids = self._last_run_ids(1, distro=distro, selection=selection)
        if not ids:
            return {}
        params: list[object] = [ids[0]]
        extra = ""
        if distro is not None:
            extra = "AND d.distro = ?"
            params.append(distro)
        rows = self.conn.execute(
            f"""SELECT d.distro, t.test FROM distro_results d
                JOIN test_results t ON t.distro_result = d.id
                WHERE d.run = ? {extra} AND t.unexpected = 1 AND t.result NOT IN (?, ?, ?)
                ORDER BY d.distro, t.id""",
            (*params, PASS, SKIP, ABSENT),
        ).fetchall()
        failed: dict[str, list[str]] = {}
        for name, test in rows:
            tests = failed.setdefault(name, [])
            if test not in tests:
                tests.append(test)
        return failed


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique-enough run id: `20260422T033417Z-1a2b3c` (UTC + random suffix)."""
    moment = (now or _now()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{os.urandom(3).hex()}"
