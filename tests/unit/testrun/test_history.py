"""The SQLite history: migrations, recording, listing, diff-last, rerun-failed."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagefactory.errors import InfrastructureError
from imagefactory.testrun.baseline import load_baseline
from imagefactory.testrun.history import (
    SCHEMA_VERSION,
    History,
    connect,
    default_db_path,
    migrate,
    new_run_id,
    schema_version,
)
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.results import TestResult, parse_log

T0 = datetime(2026, 4, 22, 3, 0, tzinfo=UTC)


def outcome(
    distro: str, results: dict[str, str], *, zfs_version: str | None = None
) -> DistroOutcome:
    tests = [TestResult(name, result, duration_s=2.0) for name, result in results.items()]
    return DistroOutcome.from_tests(distro, tests, duration_s=60.0, zfs_version=zfs_version)


def record(
    history: History,
    run_id: str,
    minutes: int,
    selection: str,
    outcomes: list[DistroOutcome],
) -> None:
    history.start_run(
        run_id,
        selection=selection,
        command=["klab", "test", "all", "--" + selection.replace("=", " ")],
        started=T0 + timedelta(minutes=minutes),
    )
    for o in outcomes:
        history.record_outcome(run_id, o)
    history.finish_run(run_id, T0 + timedelta(minutes=minutes + 5))


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_an_empty_file_is_migrated_to_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.sqlite"

    with History.open(path) as history:
        assert schema_version(history.conn) == SCHEMA_VERSION
        assert {"passed", "failed", "absent", "golden_build_id"} <= columns(
            history.conn, "distro_results"
        )
        assert {"test", "result", "reran", "log_path", "unexpected"} <= columns(
            history.conn, "test_results"
        )
    # Opening again is a no-op, not a second migration.
    with History.open(path) as history:
        assert schema_version(history.conn) == SCHEMA_VERSION


def test_a_version_1_file_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    conn = connect(path)
    assert migrate(conn, target=1) == 1
    conn.execute(
        "INSERT INTO runs (id, run_id, started, selection, command) "
        "VALUES (1, 'old-run', '2026-01-01T00:00:00+00:00', 'suite=quick', 'klab test all')"
    )
    conn.execute(
        "INSERT INTO distro_results (id, run, distro, status, zfs_version) "
        "VALUES (1, 1, 'debian13', 'failed', '2.3.2-2')"
    )
    conn.executemany(
        "INSERT INTO test_results (distro_result, test, result, duration_s) VALUES (1, ?, ?, 1)",
        [
            ("a/t1", "PASS"),
            ("a/t2", "PASS"),
            ("a/t3", "FAIL"),
            ("a/t4", "SKIP"),
            ("b/t5", "KILLED"),
        ],
    )
    conn.close()

    with History.open(path) as history:
        assert schema_version(history.conn) == SCHEMA_VERSION
        [row] = history.runs()
        assert (row.run_id, row.distro, row.zfs_version) == ("old-run", "debian13", "2.3.2-2")
        assert (row.passed, row.skipped, row.failed, row.killed) == (2, 1, 1, 1)
        # Before baselines every FAIL/KILLED counted against the run: unexpected failures.
        assert history.failed_tests() == {"debian13": ["a/t3", "b/t5"]}
        verdicts = {r.test: r.verdict for r in history.test_history("*")}
        assert verdicts == {
            "a/t1": "pass",
            "a/t2": "pass",
            "a/t3": "unexpected-failure",
            "a/t4": "skip",
            "b/t5": "unexpected-failure",
        }
        assert row.lineage == "ztest" and row.accel is None and row.kernel is None


def test_a_version_2_file_gets_verdicts_and_attempts_from_what_it_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    conn = connect(path)
    assert migrate(conn, target=2) == 2
    conn.execute(
        "INSERT INTO runs (id, run_id, started, selection, command) "
        "VALUES (1, 'v2-run', '2026-02-01T00:00:00+00:00', 'suite=quick', 'klab test all')"
    )
    conn.execute(
        "INSERT INTO distro_results (id, run, distro, status) VALUES (1, 1, 'rocky9', 'failed')"
    )
    conn.executemany(
        "INSERT INTO test_results (distro_result, test, result, reran, unexpected) "
        "VALUES (1, ?, ?, ?, ?)",
        [
            ("a/passed-on-rerun", "PASS", 1, 0),
            ("a/known", "FAIL", 0, 0),  # zts-report listed it as expected
            ("a/regression", "FAIL", 1, 1),
        ],
    )
    conn.close()

    with History.open(path) as history:
        rows = {r.test: r for r in history.test_history("a/*")}
        assert rows["a/passed-on-rerun"].verdict == "flaky"
        assert rows["a/known"].verdict == "expected"
        assert rows["a/known"].reason == "expected by zts-report"
        assert rows["a/regression"].verdict == "unexpected-failure"
        attempts = dict(
            history.conn.execute("SELECT test, failed_attempts FROM test_results").fetchall()
        )
        assert attempts == {"a/passed-on-rerun": 1, "a/known": 1, "a/regression": 2}
        stats, _ = history.flaky(last=10)
        assert {s.test for s in stats} == {"a/passed-on-rerun", "a/known", "a/regression"}


def test_a_failed_migration_leaves_the_file_at_its_version(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    conn = connect(path)
    # A table in the way makes step 1 fail for real, after it has already created `runs`:
    # the whole step must roll back.
    conn.execute("CREATE TABLE distro_results (x INTEGER)")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert schema_version(conn) == 0
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"distro_results"}  # `runs` from the same step was rolled back
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    conn = connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(InfrastructureError, match="newer than this klab"):
        History.open(path)


def test_runs_are_listed_newest_first_per_distro(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.sqlite") as history:
        record(history, "r1", 0, "suite=quick", [outcome("debian13", {"a/x": "PASS"})])
        record(
            history,
            "r2",
            10,
            "suite=quick",
            [
                outcome("debian13", {"a/x": "PASS", "a/y": "SKIP"}, zfs_version="2.3.9-1"),
                outcome("ubuntu24", {"a/x": "FAIL"}, zfs_version="2.2.2-0ubuntu9"),
            ],
        )
        record(history, "r3", 20, "run=a/x", [outcome("ubuntu24", {"a/x": "PASS"})])

        rows = history.runs()
        assert [(r.run_id, r.distro) for r in rows] == [
            ("r3", "ubuntu24"),
            ("r2", "debian13"),
            ("r2", "ubuntu24"),
            ("r1", "debian13"),
        ]
        r2_debian = rows[1]
        assert (r2_debian.passed, r2_debian.skipped, r2_debian.status) == (1, 1, "passed")
        assert rows[2].status == "failed" and rows[2].failed == 1
        assert [r.run_id for r in history.runs(distro="debian13", last=1)] == ["r2"]
        assert [r.run_id for r in history.runs(last=2)] == ["r3", "r2", "r2"]


def test_one_test_is_found_by_name_basename_or_glob(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.sqlite") as history:
        record(history, "r1", 0, "s", [outcome("fedora44", {"cli_root/zpool_add/add_001": "PASS"})])
        record(
            history,
            "r2",
            5,
            "s",
            [
                outcome("fedora44", {"cli_root/zpool_add/add_001": "FAIL"}),
                outcome("rocky9", {"cli_root/zpool_add/add_001": "PASS", "add_001x/y": "PASS"}),
            ],
        )

        by_name = history.test_history("cli_root/zpool_add/add_001")
        assert [(r.run_id, r.distro, r.result) for r in by_name] == [
            ("r2", "fedora44", "FAIL"),
            ("r2", "rocky9", "PASS"),
            ("r1", "fedora44", "PASS"),
        ]
        assert history.test_history("add_001", distro="fedora44", last=1)[0].result == "FAIL"
        assert len(history.test_history("cli_root/*")) == 3
        # A basename is not a prefix: `add_001x/y` does not match `add_001`.
        assert {r.test for r in history.test_history("add_001")} == {"cli_root/zpool_add/add_001"}


def test_diff_last_compares_with_the_previous_run_of_the_same_selection(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.sqlite") as history:
        record(
            history,
            "q1",
            0,
            "suite=quick",
            [
                outcome("debian13", {"a/1": "PASS", "a/2": "FAIL", "a/3": "PASS", "a/4": "PASS"}),
                outcome("ubuntu24", {"a/1": "PASS"}),
            ],
        )
        record(history, "other", 5, "run=a/1", [outcome("debian13", {"a/1": "FAIL"})])
        record(
            history,
            "q2",
            10,
            "suite=quick",
            [
                outcome("debian13", {"a/1": "FAIL", "a/2": "PASS", "a/3": "PASS", "a/5": "SKIP"}),
                DistroOutcome.failed_infrastructure("ubuntu24", "boot timed out"),
            ],
        )

        diff = history.diff_last()
        assert diff is not None
        assert (diff.selection, diff.previous, diff.current) == ("suite=quick", "q1", "q2")
        assert [(c.distro, c.test, c.before, c.after, c.kind) for c in diff.changes] == [
            ("debian13", "a/1", "PASS", "FAIL", "new-failure"),
            ("debian13", "a/2", "FAIL", "PASS", "fixed"),
            ("debian13", "a/4", "PASS", None, "gone"),
            ("debian13", "a/5", None, "SKIP", "new"),
            ("ubuntu24", "a/1", "PASS", None, "gone"),
        ]
        assert diff.status_changes == [("ubuntu24", "passed", "infra-error")]
        only_run = history.diff_last("run=a/1")
        assert only_run is not None and only_run.previous is None


def test_diff_last_on_an_empty_history_is_none(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.sqlite") as history:
        assert history.diff_last() is None
        assert history.failed_tests() == {}


def test_failed_tests_are_the_unexpected_failures_of_the_last_run(tmp_path: Path) -> None:
    log = (
        "Test: /x/tests/functional/casenorm/mixed_formd (run as root) [00:01] [FAIL]\n"
        "Test: /x/tests/functional/rsend/rsend_001 (run as root) [00:01] [FAIL]\n"
        "Test: /x/tests/functional/rsend/rsend_002 (run as root) [10:00] [KILLED]\n"
        "Test: /x/tests/functional/rsend/rsend_003 (run as root) [00:01] [SKIP]\n"
        "\nResults Summary\nFAIL\t   2\nKILLED\t   1\nSKIP\t   1\n\n"
        "Tests with results other than PASS that are expected:\n"
        "    FAIL casenorm/mixed_formd (https://github.com/openzfs/zfs/issues/7633)\n\n"
        "Tests with results other than PASS that are unexpected:\n"
        "    FAIL rsend/rsend_001 (expected PASS)\n"
        "    KILLED rsend/rsend_002 (expected PASS)\n"
        "    SKIP rsend/rsend_003 (expected PASS)\n"
    )
    parsed = parse_log(log)
    known = tmp_path / "known.yaml"
    known.write_text(
        "- test: casenorm/mixed_formd\n  result: FAIL\n  kind: known\n"
        "  reason: https://github.com/openzfs/zfs/issues/7633\n"
    )
    judged = DistroOutcome.from_parsed("rocky9", parsed, baseline=load_baseline([known]))
    with History.open(tmp_path / "h.sqlite") as history:
        record(history, "old", 0, "suite=quick", [outcome("rocky9", {"zzz/old": "FAIL"})])
        history.start_run("new", selection="suite=quick", command="klab test rocky9")
        history.record_outcome(
            "new", judged, log_paths={"rsend/rsend_001": "output/rsend/rsend_001"}
        )

        assert history.failed_tests() == {"rocky9": ["rsend/rsend_001", "rsend/rsend_002"]}
        assert history.failed_tests(distro="debian13") == {}
        [row] = history.test_history("rsend/rsend_001")
        assert (row.unexpected, row.log_path) == (True, "output/rsend/rsend_001")
        [known_row] = history.test_history("mixed_formd")
        assert (known_row.verdict, known_row.unexpected) == ("expected", False)
        assert known_row.reason == "https://github.com/openzfs/zfs/issues/7633"
        [digest] = {r.baseline_digest for r in history.runs(last=1)}
        assert digest is not None and digest == judged.baseline_digest


def test_recording_a_distro_twice_replaces_it(tmp_path: Path) -> None:
    with History.open(tmp_path / "h.sqlite") as history:
        record(history, "r", 0, "s", [outcome("centos9", {"a/1": "FAIL", "a/2": "FAIL"})])
        history.record_outcome("r", outcome("centos9", {"a/1": "PASS"}))

        [row] = history.runs()
        assert (row.passed, row.failed, row.status) == (1, 0, DistroStatus.PASSED)
        assert [r.result for r in history.test_history("a/*")] == ["PASS"]


def test_the_db_lives_in_the_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KLAB_STATE_DIR", raising=False)
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(tmp_path / "override"))
    assert default_db_path() == tmp_path / "override" / "history.sqlite"

    monkeypatch.delenv("IMAGEFACTORY_STATE")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    # Which user runs the tests cannot be chosen from inside them: fake the uid.
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert default_db_path() == tmp_path / "xdg" / "imagefactory" / "history.sqlite"
    # A history at the old default (before the state directories were one) is still found.
    legacy = tmp_path / "xdg" / "klab" / "history.sqlite"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"")
    assert default_db_path() == legacy
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    new, old = (
        Path("/var/lib/imagefactory/state/history.sqlite"),
        Path("/var/lib/klab/history.sqlite"),
    )
    # This host's own files decide which one a root run finds; the rule is the one above.
    assert default_db_path() == (old if old.exists() and not new.exists() else new)


def test_run_ids_sort_by_time() -> None:
    early = new_run_id(T0)
    late = new_run_id(T0 + timedelta(seconds=1))

    assert early.startswith("20260422T030000Z-")
    assert early < late
