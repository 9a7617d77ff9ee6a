"""Flake statistics: how often each test failed on each distro over the last runs.

A run counts for a test when the test ran in it (a SKIP or an absent test tested nothing);
it counts as a failure when any attempt failed, so a test that passed on its retry (flaky)
is a failure here: the rate says how often the test cannot be trusted, whatever the
verdict.  Severity follows the old OpenZFS buildbot's known-issues page: low <= 1 %,
medium <= 5 %, high above.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from imagefactory.testrun.history.queries import window
from imagefactory.testrun.history.rows import result_key


def severity(rate: float) -> str:
    if rate <= 0.01:
        return "low"
    if rate <= 0.05:
        return "medium"
    return "high"


@dataclass(frozen=True, slots=True)
class FlakyStat:
    """One test on one distro over a window of runs."""

    distro: str
    test: str
    identifier: str
    runs: int
    failures: int
    last_failed_run: str
    last_failed: str
    """When the last failing run started (ISO 8601, UTC)."""
    results: tuple[str, ...]
    """The failing result words seen (FAIL, KILLED...), from every attempt, sorted."""

    @property
    def key(self) -> str:
        return result_key(self.test, self.identifier)

    @property
    def rate(self) -> float:
        return self.failures / self.runs if self.runs else 1.0

    @property
    def always(self) -> bool:
        """Failed in every run it ran in: broken, not flaky."""
        return self.failures >= self.runs

    @property
    def severity(self) -> str:
        return severity(self.rate)

    @property
    def reason_rate(self) -> str:
        """kdevops' notation: `F:3/16` (3 failing runs out of 16)."""
        return f"F:{self.failures}/{self.runs}"

    def to_json(self) -> dict[str, Any]:
        return {
            "distro": self.distro,
            "test": self.key,
            "runs": self.runs,
            "failures": self.failures,
            "rate": round(self.rate, 4),
            "severity": self.severity,
            "results": list(self.results),
            "last_failed_run": self.last_failed_run,
            "last_failed": self.last_failed,
        }


_NOT_RUN = ("SKIP", "ABSENT")
_BATCH = 500  # names per query, far below SQLite's limit on parameters


def flaky_stats(
    conn: sqlite3.Connection, *, last: int, distro: str | None = None
) -> tuple[list[FlakyStat], int]:
    """Every test that failed at least once in the last `last` runs (of `distro`), worst
    first, and how many runs the window holds."""
    runs_sql, runs_params = window(last, distro=distro)
    size = int(conn.execute(f"SELECT count(*) FROM ({runs_sql})", runs_params).fetchone()[0])
    if not size:
        return [], 0
    # The distro rows of the window, once, in a temporary table (the connection may be
    # read-only: temp tables live apart from the file).
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS flaky_window (id INTEGER PRIMARY KEY)")
    conn.execute("DELETE FROM temp.flaky_window")
    extra, params = ("AND d.distro = ?", [distro]) if distro is not None else ("", [])
    conn.execute(
        f"""INSERT INTO temp.flaky_window SELECT d.id FROM distro_results d
            WHERE d.run IN ({runs_sql}) {extra}""",
        [*runs_params, *params],
    )
    # The few rows that failed (a partial index holds them): the failing tests, their
    # failing words and their last failing run.
    failing_rows = conn.execute(
        """SELECT d.distro, t.test, t.identifier, t.result, t.attempt_results, r.run_id,
                  r.started
           FROM temp.flaky_window w
           JOIN distro_results d ON d.id = w.id
           JOIN test_results t ON t.distro_result = d.id AND t.failed_attempts > 0
           JOIN runs r ON r.id = d.run"""
    ).fetchall()
    failing: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, test, ident, result, attempts, run_id, started in failing_rows:
        entry = failing.setdefault((name, test, ident), {"n": 0, "last": ("", ""), "words": set()})
        entry["n"] += 1
        entry["last"] = max(entry["last"], (started, run_id))
        words = (attempts or result).split()
        entry["words"].update(w for w in words if w not in ("PASS", *_NOT_RUN))
    runs = _run_counts(conn, {test for _, test, _ in failing})
    stats = [
        FlakyStat(
            distro=name,
            test=test,
            identifier=ident,
            runs=max(runs.get((name, test, ident), 0), entry["n"]),
            failures=entry["n"],
            last_failed_run=entry["last"][1],
            last_failed=entry["last"][0],
            results=tuple(sorted(entry["words"])),
        )
        for (name, test, ident), entry in failing.items()
    ]
    stats.sort(key=lambda s: (-s.rate, -s.failures, s.distro, s.key))
    return stats, size


def _run_counts(conn: sqlite3.Connection, tests: set[str]) -> dict[tuple[str, str, str], int]:
    """In how many of the window's runs each of `tests` ran, per distro and identifier.

    Only failing tests are counted, through the (test, distro_result) index: a few thousand
    index probes instead of a grouped scan of every row in the window.
    """
    counts: dict[tuple[str, str, str], int] = {}
    names = sorted(tests)
    for start in range(0, len(names), _BATCH):
        batch = names[start : start + _BATCH]
        rows = conn.execute(
            f"""SELECT d.distro, t.test, t.identifier, count(*) FROM test_results t
                JOIN distro_results d ON d.id = t.distro_result
                WHERE t.test IN ({",".join("?" * len(batch))})
                  AND t.distro_result IN (SELECT id FROM temp.flaky_window)
                  AND t.result NOT IN (?, ?)
                GROUP BY d.distro, t.test, t.identifier""",
            [*batch, *_NOT_RUN],
        )
        counts.update({(d, t, i): n for d, t, i, n in rows})
    return counts
