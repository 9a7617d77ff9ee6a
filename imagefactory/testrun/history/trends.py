"""Timing trends: tests that got slower than their own recent past.

A test's duration in a run is compared with the median of its last 10 clean passes (PASS at
the first attempt) on the same distro, lineage and accelerator, in runs before that one: a
TCG run is never compared with a KVM one.  It is flagged when it rose by more than both
thresholds (default 25 % and 5 s: a 2 s test taking 3 s is noise, a 40-minute test taking
41 is too).  Fewer than 3 earlier passes give no median worth the name: not compared.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from imagefactory.testrun.history.rows import result_key

LOOKBACK_RUNS = 100
"""How many earlier runs of a distro are searched for a test's last passes."""


@dataclass(frozen=True, slots=True)
class TimingThresholds:
    ratio: float = 0.25
    """Flag a rise above this share of the median..."""
    seconds: float = 5.0
    """...that is also at least this many seconds."""
    window: int = 10
    """The median is over this many of the test's last clean passes."""
    min_samples: int = 3

    def describe(self) -> str:
        return (
            f"more than {self.ratio * 100:g} % and {self.seconds:g} s slower than the median of "
            f"their last {self.window} passing runs (same distro, lineage and accelerator)"
        )


@dataclass(frozen=True, slots=True)
class TimingRise:
    distro: str
    test: str
    duration_s: float
    median_s: float
    samples: int

    @property
    def rise(self) -> float:
        return self.duration_s / self.median_s - 1.0 if self.median_s > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {
            "distro": self.distro,
            "test": self.test,
            "duration_s": self.duration_s,
            "median_s": self.median_s,
            "samples": self.samples,
            "rise": round(self.rise, 4) if self.median_s > 0 else None,
        }


_CLEAN_PASS = "t.result = 'PASS' AND t.failed_attempts = 0 AND t.duration_s IS NOT NULL"


def timing_rises(
    conn: sqlite3.Connection,
    run: int,
    thresholds: TimingThresholds,
    *,
    distro: str | None = None,
) -> tuple[list[TimingRise], int]:
    """The tests of run `run` (internal id) that got slower, biggest rise first, and how
    many tests were compared."""
    contexts = conn.execute(
        "SELECT id, distro, lineage, accel FROM distro_results WHERE run = ? ORDER BY distro",
        (run,),
    ).fetchall()
    rises: list[TimingRise] = []
    compared = 0
    for distro_result, name, lineage, accel in contexts:
        if distro is not None and name != distro:
            continue
        current = {
            (test, ident): duration
            for test, ident, duration in conn.execute(
                f"""SELECT t.test, t.identifier, t.duration_s FROM test_results t
                    WHERE t.distro_result = ? AND {_CLEAN_PASS}""",
                (distro_result,),
            )
        }
        if not current:
            continue
        earlier = _earlier(conn, run, name, lineage, accel)
        samples = _last_passes(conn, earlier, current, thresholds.window)
        for (test, ident), now in current.items():
            past = samples[(test, ident)]
            if len(past) < thresholds.min_samples:
                continue
            compared += 1
            median = statistics.median(past)
            if now > median * (1.0 + thresholds.ratio) and now - median >= thresholds.seconds:
                rises.append(TimingRise(name, result_key(test, ident), now, median, len(past)))
    rises.sort(key=lambda r: (-(r.duration_s - r.median_s), r.distro, r.test))
    return rises, compared


def _earlier(
    conn: sqlite3.Connection, run: int, distro: str, lineage: str | None, accel: str | None
) -> list[int]:
    """distro_results ids of the same distro, lineage and accelerator before `run`."""
    rows = conn.execute(
        """SELECT d.id FROM distro_results d JOIN runs r ON r.id = d.run
           WHERE d.distro = ? AND d.lineage IS ? AND d.accel IS ?
             AND (r.started, r.id) < (SELECT started, id FROM runs WHERE id = ?)
           ORDER BY r.started DESC, r.id DESC LIMIT ?""",
        (distro, lineage, accel, run, LOOKBACK_RUNS),
    ).fetchall()
    return [int(r[0]) for r in rows]


def _last_passes(
    conn: sqlite3.Connection, earlier: list[int], wanted: Iterable[tuple[str, str]], window: int
) -> dict[tuple[str, str], list[float]]:
    """Up to `window` durations per wanted test from its newest clean passes.

    The newest `window` earlier runs are read in one grouped query (SQLite collects each
    test's durations; their order does not matter to a median), which serves every test
    that passed cleanly in all of them.  Only the tests short of `window` are then followed
    further back, `window` runs at a time, until each has its window: a history of a
    thousand runs costs about what its last twenty cost.
    """
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in wanted}
    head, tail = earlier[:window], earlier[window:]
    if head:
        grouped = conn.execute(
            f"""SELECT t.test, t.identifier, group_concat(t.duration_s, ' ') FROM test_results t
                WHERE t.distro_result IN ({",".join("?" * len(head))}) AND {_CLEAN_PASS}
                GROUP BY t.test, t.identifier""",
            head,
        )
        for test, ident, durations in grouped:
            got = samples.get((test, ident))
            if got is not None:
                got.extend(float(d) for d in durations.split())
    short = {key for key, got in samples.items() if len(got) < window}
    # Further back, only the short tests' rows, chunk by chunk, newest chunk first: SQLite
    # finds them through the (test, distro_result) index.
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS timing_short (test TEXT, identifier TEXT)")
    for start in range(0, len(tail), window):
        if not short:
            break
        chunk = tail[start : start + window]
        order = {d: i for i, d in enumerate(chunk)}
        conn.execute("DELETE FROM temp.timing_short")
        conn.executemany("INSERT INTO temp.timing_short VALUES (?, ?)", sorted(short))
        rows: list[tuple[int, str, str, float]] = conn.execute(
            f"""SELECT t.distro_result, t.test, t.identifier, t.duration_s
                FROM temp.timing_short s
                JOIN test_results t ON t.test = s.test AND t.identifier = s.identifier
                WHERE t.distro_result IN ({",".join("?" * len(chunk))}) AND {_CLEAN_PASS}""",
            chunk,
        ).fetchall()
        rows.sort(key=lambda row: order[row[0]])
        for _, test, ident, duration in rows:
            got = samples[(test, ident)]
            if len(got) < window:
                got.append(float(duration))
        short = {key for key in short if len(samples[key]) < window}
    return samples


def timing_markdown(
    rises: Sequence[TimingRise], compared: int, thresholds: TimingThresholds | None = None
) -> list[str]:
    """The "Timing" section of a run's summary.md (lines, no trailing blank)."""
    from imagefactory.testrun.tables import format_duration  # rich: only for a summary

    limits = thresholds or TimingThresholds()
    lines = ["## Timing", ""]
    if not compared:
        lines.append(
            f"No test had {limits.min_samples} earlier passing runs on the same distro, "
            "lineage and accelerator to compare with yet."
        )
        return lines
    if not rises:
        lines.append(f"No test got slower: {compared} compared, none {limits.describe()}.")
        return lines
    lines += [
        f"{len(rises)} of {compared} tests compared are {limits.describe()}:",
        "",
        "| distro | test | now | median | rise | runs |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rises:
        rise = f"+{r.rise * 100:.0f} %" if r.median_s > 0 else "—"
        lines.append(
            f"| {r.distro} | `{r.test}` | {format_duration(r.duration_s)} "
            f"| {format_duration(r.median_s)} | {rise} | {r.samples} |"
        )
    return lines
