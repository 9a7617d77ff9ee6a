"""What the exporter needs from the history, read in one read-only pass per scrape.

Only the newest `window` runs are read (100 by default: the dashboards' trend), in a few
grouped queries rather than one per run, so a scrape over 100 runs of 1,500 tests stays well
under a second (bench/results.py measures it).  Flake rates and timing rises come from the
history's own `flaky` and `trends` modules: one definition of each, whoever asks.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imagefactory.testrun.history import History, TimingThresholds
from imagefactory.testrun.history.flaky import FlakyStat, flaky_stats
from imagefactory.testrun.history.queries import window
from imagefactory.testrun.history.rows import result_key
from imagefactory.testrun.history.trends import TimingRise, timing_rises
from imagefactory.testrun.verdict import Verdict

NOT_RAN = frozenset({Verdict.SKIP.value, Verdict.ABSENT.value})


@dataclass(frozen=True, slots=True)
class RunFacts:
    run_id: str
    selection: str
    started: float
    finished: float | None


@dataclass(frozen=True, slots=True)
class DistroRun:
    """One distro in one run: its verdict counts, duration and artifacts directory."""

    run_id: str
    selection: str
    distro: str
    verdicts: dict[str, int]
    duration_s: float | None
    artifacts_dir: str | None

    @property
    def pass_ratio(self) -> float | None:
        ran = sum(n for v, n in self.verdicts.items() if v not in NOT_RAN)
        return self.verdicts.get(Verdict.PASS.value, 0) / ran if ran else None


@dataclass(frozen=True, slots=True)
class LastTest:
    run_id: str
    verdict: str
    duration_s: float | None


@dataclass
class HistorySnapshot:
    runs: list[RunFacts] = field(default_factory=list)
    """Newest first."""
    distro_runs: list[DistroRun] = field(default_factory=list)
    """Newest run first."""
    last_tests: dict[tuple[str, str], LastTest] = field(default_factory=dict)
    """(distro, test key) -> its newest row in the window."""
    flaky: list[FlakyStat] = field(default_factory=list)
    rises: list[TimingRise] = field(default_factory=list)

    def newest_per_distro(self) -> dict[str, DistroRun]:
        newest: dict[str, DistroRun] = {}
        for row in self.distro_runs:
            newest.setdefault(row.distro, row)
        return newest

    def newest_run(self) -> RunFacts | None:
        return self.runs[0] if self.runs else None


def _unix(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def read_snapshot(path: Path, *, window_runs: int) -> HistorySnapshot:
    """Read the newest `window_runs` runs of the history at `path` (read-only).

    Raises the history's one-line `InfrastructureError` when the file is missing or damaged.
    """
    with History.open(path, readonly=True) as history:
        try:
            return _read(history.conn, window_runs)
        except sqlite3.Error as exc:
            from imagefactory.testrun.history.connection import history_error

            raise history_error(path, exc) from exc


def _read(conn: sqlite3.Connection, window_runs: int) -> HistorySnapshot:
    snap = HistorySnapshot()
    sql, params = window(window_runs)
    conn.execute("DROP TABLE IF EXISTS temp.metrics_window")
    conn.execute(f"CREATE TEMP TABLE metrics_window AS {sql}", params)
    facts: dict[int, RunFacts] = {}
    for rid, run_id, selection, started, finished in conn.execute(
        """SELECT r.id, r.run_id, r.selection, r.started, r.finished FROM runs r
           WHERE r.id IN (SELECT id FROM temp.metrics_window)
           ORDER BY r.started DESC, r.id DESC"""
    ):
        start = _unix(started)
        if start is None:
            continue  # a row no klab wrote: its run cannot be placed in time
        facts[rid] = RunFacts(run_id, selection, start, _unix(finished))
    snap.runs = list(facts.values())
    order = {rid: i for i, rid in enumerate(facts)}
    counts: dict[int, dict[str, int]] = {}
    for distro_result, verdict, n in conn.execute(
        """SELECT t.distro_result, coalesce(t.verdict, lower(t.result)), count(*)
           FROM test_results t
           WHERE t.distro_result IN (SELECT d.id FROM distro_results d
                                     WHERE d.run IN (SELECT id FROM temp.metrics_window))
           GROUP BY t.distro_result, 2"""
    ):
        counts.setdefault(distro_result, {})[verdict] = n
    rows = conn.execute(
        """SELECT d.id, d.run, d.distro, d.duration_s, d.artifacts_dir FROM distro_results d
           WHERE d.run IN (SELECT id FROM temp.metrics_window)"""
    ).fetchall()
    rows = [r for r in rows if r[1] in facts]
    rows.sort(key=lambda r: (order[r[1]], r[2]))
    for did, rid, distro, duration, artifacts in rows:
        run = facts[rid]
        snap.distro_runs.append(
            DistroRun(run.run_id, run.selection, distro, counts.get(did, {}), duration, artifacts)
        )
    _last_tests(conn, snap, rows, facts)
    snap.flaky, _ = flaky_stats(conn, last=window_runs)
    if snap.runs:
        newest = next(iter(facts))
        snap.rises, _ = timing_rises(conn, newest, TimingThresholds())
    return snap


def _last_tests(
    conn: sqlite3.Connection,
    snap: HistorySnapshot,
    rows: list[tuple[int, int, str, float | None, str | None]],
    facts: dict[int, RunFacts],
) -> None:
    """Each (distro, test)'s newest row, read from the newest run of each selection only.

    A run of a selection supersedes the older runs of the same selection (the same tests,
    absent ones recorded as absent), so only the newest run per (distro, selection) is read:
    1,500 rows for a window of 100 quick-suite runs instead of 150,000.  Runs are visited
    newest first; a test keeps the first row found.
    """
    newest: dict[tuple[str, str], int] = {}
    for did, rid, distro, *_ in rows:  # rows are newest run first
        newest.setdefault((distro, facts[rid].selection), did)
    run_of = {did: facts[rid].run_id for did, rid, *_ in rows}
    distro_of = {did: distro for did, _, distro, *_ in rows}
    found: dict[tuple[str, str], LastTest] = {}
    for did in newest.values():
        for test, ident, verdict, result, duration in conn.execute(
            """SELECT test, identifier, verdict, result, duration_s FROM test_results
               WHERE distro_result = ?""",
            (did,),
        ):
            key = (distro_of[did], result_key(test, ident))
            if key not in found:
                found[key] = LastTest(run_of[did], verdict or result.lower(), duration)
    snap.last_tests = dict(sorted(found.items()))
