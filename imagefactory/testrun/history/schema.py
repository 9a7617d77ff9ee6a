"""The history's versioned schema: ordered migrations, applied in place.

`PRAGMA user_version` holds the version and `MIGRATIONS` are ordered steps, each applied in
its own transaction, so a file written by an older klab is upgraded in place and a newer
file is refused instead of misread.  The expected tables and columns are those a fresh file
gets from the same steps (`expected_columns`), so a damaged file (a dropped table) is
recognised without a second description of the schema.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cache

from imagefactory.errors import InfrastructureError
from imagefactory.log import get_logger

log = get_logger(__name__)  # structlog loads on first use: reading logs nothing


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


# Result words that are neither a pass nor a failure (results.category) in SQL form.
_NOT_FAILING = "('PASS', 'SKIP', 'ABSENT')"

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
    Migration(
        3,
        "verdicts, attempts and the run context (kernel, accelerator, baselines, lineage)",
        (
            "ALTER TABLE test_results ADD COLUMN verdict TEXT",
            "ALTER TABLE test_results ADD COLUMN reason TEXT",
            "ALTER TABLE test_results ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
            # Attempts whose result word was a failure: > 0 means the test failed at least
            # once in that run (flaky included), the numerator of every flake rate.
            "ALTER TABLE test_results ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE test_results ADD COLUMN attempt_results TEXT",
            "ALTER TABLE distro_results ADD COLUMN kernel TEXT",
            "ALTER TABLE distro_results ADD COLUMN accel TEXT",
            "ALTER TABLE distro_results ADD COLUMN baseline_digest TEXT",
            "ALTER TABLE distro_results ADD COLUMN lineage TEXT",
            # Runs before version 3 all came from the test stage, which tests ztest goldens.
            "UPDATE distro_results SET lineage = 'ztest'",
            # zfs-tests.sh -R reruns a test because it failed: a RERAN row had two attempts,
            # the first a failure.  What zts-report (or, before it, the result) judged
            # becomes the verdict; a pass after a rerun is flaky, never a plain pass.
            f"""UPDATE test_results SET
                attempts = CASE WHEN reran THEN 2 ELSE 1 END,
                failed_attempts = CASE WHEN result NOT IN {_NOT_FAILING}
                                       THEN 1 + (reran != 0) ELSE (reran != 0) END,
                verdict = CASE
                    WHEN result = 'PASS' AND reran THEN 'flaky'
                    WHEN result = 'PASS' THEN 'pass'
                    WHEN result = 'SKIP' THEN 'skip'
                    WHEN result = 'ABSENT' THEN 'absent'
                    WHEN unexpected THEN 'unexpected-failure'
                    ELSE 'expected' END,
                reason = CASE WHEN result NOT IN {_NOT_FAILING} AND NOT unexpected
                              THEN 'expected by zts-report' END""",
            # Only a few rows failed at all: the flake statistics start from these.
            """CREATE INDEX test_results_failing ON test_results (distro_result)
               WHERE failed_attempts > 0""",
        ),
    ),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def refuse_newer(current: int, path: object) -> None:
    if current > SCHEMA_VERSION:
        raise InfrastructureError(
            f"the test history {path} uses schema version {current}, newer than this klab "
            f"knows ({SCHEMA_VERSION})",
            hint="use a newer klab, or point IMAGEFACTORY_STATE at another directory",
        )


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION, *, path: object = "") -> int:
    """Apply the migrations above the file's version up to `target`; return the new version.

    Each step runs in its own `BEGIN IMMEDIATE` transaction together with its user_version
    bump, so a crash leaves the file at the last complete version, and two klab processes
    opening the same file at once do not both apply a step.
    """
    current = schema_version(conn)
    refuse_newer(current, path)
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


@cache
def expected_columns(version: int = SCHEMA_VERSION) -> dict[str, frozenset[str]]:
    """Each table's columns at `version`, as the migrations create them in a fresh file."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in (s for s in MIGRATIONS if s.version <= version):
            for statement in step.statements:
                conn.execute(statement)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: frozenset(r[1] for r in conn.execute(f"PRAGMA table_info({t})")) for t in tables}
    finally:
        conn.close()


def missing_parts(conn: sqlite3.Connection, version: int) -> list[str]:
    """Tables or columns a file at `version` should have and does not (a damaged file)."""
    missing: list[str] = []
    for table, wanted in sorted(expected_columns(version).items()):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            missing.append(f"table {table}")
        else:
            missing += [f"column {table}.{c}" for c in sorted(wanted - have)]
    return missing
