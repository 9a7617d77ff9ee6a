"""The report's trend section from the history: pass rate over the last runs, this run's
slowest tests and the tests that got slower than their recent median.

Read-only, and only what the history already answers (`klab history` shows the same
figures), so the page and the command line never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imagefactory.errors import UsageError

TREND_RUNS = 30
SLOWEST = 15


def _rate(passed: int, failed: int, killed: int) -> float | None:
    ran = passed + failed + killed
    return passed / ran if ran else None


def history_trends(run_id: str, distros: Sequence[str], path: Path | None = None) -> dict[str, Any]:
    """{"pass_rate": {distro: [points, oldest first]}, "slowest": [...], "slower": [...],
    "compared": N}; empty when there is no history file."""
    from imagefactory.testrun.history import History, RunRef, default_db_path

    path = path or default_db_path()
    if not path.exists():
        return {}
    with History.open(path, readonly=True) as history:
        pass_rate = {}
        for distro in distros:
            rows = history.runs(distro=distro, last=TREND_RUNS)
            pass_rate[distro] = [
                {
                    "run_id": r.run_id,
                    "started": r.started,
                    "rate": _rate(r.passed, r.failed, r.killed),
                }
                for r in reversed(rows)
                if r.distro == distro
            ]
        try:
            run = history.resolve_run(RunRef(run_id))
        except UsageError:
            return {"pass_rate": pass_rate, "slowest": [], "slower": [], "compared": 0}
        tests = history.run_tests(run)
        durations = [
            (row.duration_s, d, key)
            for d, rows in tests.items()
            for key, row in rows.items()
            if row.duration_s is not None
        ]
        durations.sort(key=lambda t: -t[0])
        timed = [{"distro": d, "test": k, "duration_s": s} for s, d, k in durations]
        rises, compared = history.timing(run.run_id)
    return {
        "pass_rate": pass_rate,
        "slowest": timed[:SLOWEST],
        "slower": [r.to_json() for r in rises],
        "compared": compared,
    }
