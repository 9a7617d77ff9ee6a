"""Reading the history: runs, one test's track record, a run by its id, what to rerun."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from imagefactory.errors import UsageError
from imagefactory.testrun.history.rows import DISTRO_COLUMNS, DistroRow, TestRow, result_key
from imagefactory.testrun.history.values import RunRef
from imagefactory.testrun.results import ABSENT, PASS, SKIP

_NEWEST_FIRST = "ORDER BY r.started DESC, r.id DESC"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def window(
    last: int,
    *,
    distro: str | None = None,
    selection: str | None = None,
    before: int | None = None,
) -> tuple[str, list[object]]:
    """A subquery for the internal ids of the newest `last` runs (that ran `distro`, of
    `selection`, older than run `before`), and its parameters.  A subquery, not a list of
    ids: a window of 100,000 runs needs no 100,000 SQL variables."""
    clauses: list[str] = []
    params: list[object] = []
    if distro is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM distro_results wd WHERE wd.run = wr.id AND wd.distro = ?)"
        )
        params.append(distro)
    if selection is not None:
        clauses.append("wr.selection = ?")
        params.append(selection)
    if before is not None:
        clauses.append("(wr.started, wr.id) < (SELECT started, id FROM runs WHERE id = ?)")
        params.append(before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT wr.id FROM runs wr {where} ORDER BY wr.started DESC, wr.id DESC LIMIT ?"
    return sql, [*params, last]


def last_run_ids(
    conn: sqlite3.Connection,
    last: int,
    *,
    distro: str | None = None,
    selection: str | None = None,
    before: int | None = None,
) -> list[int]:
    """Internal ids of the newest `last` runs (see `window`), newest first."""
    sql, params = window(last, distro=distro, selection=selection, before=before)
    return [int(r[0]) for r in conn.execute(sql, params)]


def runs(conn: sqlite3.Connection, *, distro: str | None = None, last: int = 10) -> list[DistroRow]:
    """The last `last` runs (newest first), one row per distro; only `distro` if given."""
    sql, params = window(last, distro=distro)
    extra = ""
    if distro is not None:
        extra = "AND d.distro = ?"
        params.append(distro)
    rows = conn.execute(
        f"""SELECT {DISTRO_COLUMNS} FROM runs r JOIN distro_results d ON d.run = r.id
            WHERE r.id IN ({sql}) {extra} {_NEWEST_FIRST}, d.distro""",
        params,
    ).fetchall()
    return [DistroRow(*row) for row in rows]


def test_history(
    conn: sqlite3.Connection, test: str, *, distro: str | None = None, last: int = 10
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
    rows = conn.execute(
        f"""SELECT r.run_id, r.started, d.distro, d.zfs_version, t.test, t.identifier,
                t.result, t.duration_s, t.reran, t.unexpected, t.log_path, t.verdict,
                t.attempt_results, t.reason
            FROM test_results t
            JOIN distro_results d ON t.distro_result = d.id
            JOIN runs r ON d.run = r.id
            WHERE {match} {extra}
            {_NEWEST_FIRST}, d.distro, t.test, t.identifier""",
        params,
    ).fetchall()
    result: list[TestRow] = []
    seen_runs: set[str] = set()
    for row in rows:
        if row[0] not in seen_runs:
            if len(seen_runs) == last:
                break
            seen_runs.add(row[0])
        run_id, started, distro_name, zfs, name, ident, res, dur = row[:8]
        reran, unexpected, log_path, verdict, attempts, reason = row[8:]
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
                unexpected=bool(unexpected),
                log_path=log_path,
                verdict=verdict,
                attempts=tuple((attempts or res).split()),
                reason=reason,
            )
        )
    return result


def failed_tests(
    conn: sqlite3.Connection, *, selection: str | None = None, distro: str | None = None
) -> dict[str, list[str]]:
    """The unexpected results of the last run (of `selection`), per distro, for
    `klab test --rerun-failed`; names, so they can be passed to `--run`."""
    ids = last_run_ids(conn, 1, distro=distro, selection=selection)
    if not ids:
        return {}
    params: list[object] = [ids[0]]
    extra = ""
    if distro is not None:
        extra = "AND d.distro = ?"
        params.append(distro)
    rows = conn.execute(
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


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run found by its id: the internal id, the run id and what it ran."""

    id: int
    run_id: str
    started: str
    selection: str


def resolve_run(conn: sqlite3.Connection, ref: RunRef, path: object) -> StoredRun:
    """The run `ref` names: `last`, `last~N`, an exact run id or a unique prefix of one."""
    columns = "r.id, r.run_id, r.started, r.selection"
    if ref.back is not None:
        row = conn.execute(
            f"SELECT {columns} FROM runs r {_NEWEST_FIRST} LIMIT 1 OFFSET ?", (ref.back,)
        ).fetchone()
        if row is None:
            count = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
            raise UsageError(
                f"{ref.text}: the test history {path} holds {count} run(s)",
                hint="`klab history` lists them",
            )
        return StoredRun(*row)
    row = conn.execute(f"SELECT {columns} FROM runs r WHERE r.run_id = ?", (ref.text,)).fetchone()
    if row is not None:
        return StoredRun(*row)
    rows = conn.execute(
        f"SELECT {columns} FROM runs r WHERE r.run_id LIKE ? ESCAPE '\\' {_NEWEST_FIRST} LIMIT 6",
        (_like_escape(ref.text) + "%",),
    ).fetchall()
    if len(rows) == 1:
        return StoredRun(*rows[0])
    if not rows:
        raise UsageError(
            f"no run {ref.text} in the test history {path}", hint="`klab history` lists the runs"
        )
    shown = ", ".join(r[1] for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
    raise UsageError(f"run {ref.text} is ambiguous: {shown}", hint="give more of the run id")


def distro_context(conn: sqlite3.Connection, run: int) -> dict[str, DistroRow]:
    """Each distro's row of one run."""
    rows = conn.execute(
        f"""SELECT {DISTRO_COLUMNS} FROM runs r JOIN distro_results d ON d.run = r.id
            WHERE r.id = ? ORDER BY d.distro""",
        (run,),
    ).fetchall()
    return {row[3]: DistroRow(*row) for row in rows}


@dataclass(frozen=True, slots=True)
class StoredTest:
    """What a diff or a rejudge needs of one stored test row."""

    test: str
    identifier: str
    result: str
    verdict: str | None
    attempts: tuple[str, ...]
    failed_attempts: int
    duration_s: float | None
    reran: bool

    @property
    def key(self) -> str:
        return result_key(self.test, self.identifier)


def tests_of(conn: sqlite3.Connection, run: int) -> dict[str, dict[str, StoredTest]]:
    """Every test row of one run: distro → key → row."""
    rows = conn.execute(
        """SELECT d.distro, t.test, t.identifier, t.result, t.verdict, t.attempt_results,
                  t.failed_attempts, t.duration_s, t.reran
           FROM distro_results d JOIN test_results t ON t.distro_result = d.id
           WHERE d.run = ? ORDER BY d.distro, t.id""",
        (run,),
    ).fetchall()
    found: dict[str, dict[str, StoredTest]] = {}
    for distro, test, ident, result, verdict, attempts, failed, duration, reran in rows:
        row = StoredTest(
            test,
            ident,
            result,
            verdict,
            tuple((attempts or result).split()),
            failed,
            duration,
            bool(reran),
        )
        found.setdefault(distro, {})[row.key] = row
    return found
