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

from imagefactory.testrun.history.queries import last_run_ids
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


def flaky_stats(
    conn: sqlite3.Connection, *, last: int, distro: str | None = None
) -> tuple[list[FlakyStat], int]:
    """Every test that failed at least once in the last `last` runs (of `distro`), worst
    first, and how many runs the window holds."""
    ids = last_run_ids(conn, last, distro=distro)
    if not ids:
        return [], 0
    marks = ",".join("?" * len(ids))
    extra, params = ("AND d.distro = ?", [distro]) if distro is not None else ("", [])
    # The few rows that failed (a partial index holds them), with their run's start: the
    # failing tests, their failing words and their last failing run.
    failing_rows = conn.execute(
        f"""SELECT d.distro, t.test, t.identifier, t.result, t.attempt_results, r.run_id,
                   r.started
            FROM distro_results d
            JOIN test_results t ON t.distro_result = d.id AND t.failed_attempts > 0
            JOIN runs r ON r.id = d.run
            WHERE d.run IN ({marks}) {extra}""",
        [*ids, *params],
    ).fetchall()
    failing: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, test, ident, result, attempts, run_id, started in failing_rows:
        entry = failing.setdefault((name, test, ident), {"n": 0, "last": ("", ""), "words": set()})
        entry["n"] += 1
        entry["last"] = max(entry["last"], (started, run_id))
        words = (attempts or result).split()
        entry["words"].update(w for w in words if w not in ("PASS", *_NOT_RUN))
    if not failing:
        return [], len(ids)
    runs = _run_counts(conn, ids, distro, {(d, t) for d, t, _ in failing})
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
    return stats, len(ids)


def _run_counts(
    conn: sqlite3.Connection,
    ids: list[int],
    distro: str | None,
    tests: set[tuple[str, str]],
) -> dict[tuple[str, str, str], int]:
    """How many of the runs `ids` ran each of `tests` (distro, name) — one grouped scan."""
    marks = ",".join("?" * len(ids))
    extra, params = ("AND d.distro = ?", [distro]) if distro is not None else ("", [])
    rows = conn.execute(
        f"""SELECT d.distro, t.test, t.identifier, count(*)
            FROM distro_results d
            JOIN test_results t ON t.distro_result = d.id
            WHERE d.run IN ({marks}) {extra} AND t.result NOT IN (?, ?)
            GROUP BY d.distro, t.test, t.identifier""",
        [*ids, *params, *_NOT_RUN],
    ).fetchall()
    return {(d, t, i): n for d, t, i, n in rows if (d, t) in tests}
