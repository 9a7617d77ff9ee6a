"""What changed between two runs, per distro: new failures, fixed, newly flaky, new, gone.

A change compares both the result word and the verdict, so a failure that a baseline stopped
covering (`expected` → `unexpected-failure`) is a new failure, a known flake that fired
(`pass` → `expected`) is only a change, and a test that failed in both runs for the same
known reason is no change at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from imagefactory.testrun.history.queries import StoredRun, distro_context, last_run_ids
from imagefactory.testrun.history.rows import result_key
from imagefactory.testrun.history.trends import TimingRise
from imagefactory.testrun.results import PASS, is_failure
from imagefactory.testrun.verdict import FAILING, Verdict

KINDS = ("new-failure", "newly-flaky", "fixed", "changed", "new", "gone")
"""Change kinds, in the order a reader should look at them."""


@dataclass(frozen=True, slots=True)
class TestChange:
    """A test whose result or verdict differs between two runs; None: not in that run."""

    __test__ = False

    distro: str
    test: str
    before: str | None
    after: str | None
    before_verdict: str | None = None
    after_verdict: str | None = None

    @property
    def kind(self) -> str:
        """`new-failure`: now failing the run (unexpected failure or crash) and not before,
        whether the test broke or a baseline entry stopped covering it; a failure a
        baseline expects is only `changed`.  `fixed`: a failure before, a pass now."""
        if self.before is None:
            return "new"
        if self.after is None:
            return "gone"
        if _failing(self.after_verdict) and not _failing(self.before_verdict):
            return "new-failure"
        if self.after_verdict == Verdict.FLAKY and self.before_verdict != Verdict.FLAKY:
            return "newly-flaky"
        if is_failure(self.before) and self.after == PASS:
            return "fixed"
        return "changed"


def _failing(verdict: str | None) -> bool:
    return verdict is not None and Verdict(verdict) in FAILING


@dataclass(slots=True)
class RunDiff:
    selection: str
    current: str
    previous: str | None
    changes: list[TestChange]
    status_changes: list[tuple[str, str | None, str | None]]
    timing: list[TimingRise] = field(default_factory=list)
    timing_compared: int = 0
    """How many passing tests had enough earlier passing runs to be compared."""

    def by_distro(self) -> dict[str, list[TestChange]]:
        grouped: dict[str, list[TestChange]] = {}
        for change in sorted(self.changes, key=lambda c: (c.distro, KINDS.index(c.kind), c.test)):
            grouped.setdefault(change.distro, []).append(change)
        return grouped


Seen = tuple[str | None, str | None]
"""A test's (result, verdict) in one run; (None, None) when it is not in that run."""


def _seen(conn: sqlite3.Connection, run: int) -> dict[str, dict[tuple[str, str], Seen]]:
    """distro → (test, identifier) → (result, verdict): plain tuples, a diff reads 2 x 1,500."""
    found: dict[str, dict[tuple[str, str], Seen]] = {}
    rows = conn.execute(
        """SELECT d.distro, t.test, t.identifier, t.result, t.verdict
           FROM distro_results d JOIN test_results t ON t.distro_result = d.id WHERE d.run = ?""",
        (run,),
    )
    for distro, test, ident, result, verdict in rows:
        found.setdefault(distro, {})[(test, ident)] = (result, verdict)
    return found


def diff_runs(
    conn: sqlite3.Connection, before: StoredRun, after: StoredRun, *, distro: str | None = None
) -> RunDiff:
    """Changes from run `before` to run `after` (only `distro`'s when given)."""
    old, new = _seen(conn, before.id), _seen(conn, after.id)
    old_status = {d: r.status for d, r in distro_context(conn, before.id).items()}
    new_status = {d: r.status for d, r in distro_context(conn, after.id).items()}
    distros = sorted(old_status.keys() | new_status.keys())
    if distro is not None:
        distros = [d for d in distros if d == distro]
    changes: list[TestChange] = []
    missing: Seen = (None, None)
    for name in distros:
        was, now = old.get(name, {}), new.get(name, {})
        for test, ident in sorted(was.keys() | now.keys()):
            b, a = was.get((test, ident), missing), now.get((test, ident), missing)
            if a != b:
                changes.append(TestChange(name, result_key(test, ident), b[0], a[0], b[1], a[1]))
    status_changes = [
        (d, old_status.get(d), new_status.get(d))
        for d in distros
        if old_status.get(d) != new_status.get(d)
    ]
    return RunDiff(after.selection, after.run_id, before.run_id, changes, status_changes)


def _stored(conn: sqlite3.Connection, run: int) -> StoredRun:
    row = conn.execute("SELECT id, run_id, started, selection FROM runs WHERE id = ?", (run,))
    return StoredRun(*row.fetchone())


def last_pair(
    conn: sqlite3.Connection, *, selection: str | None = None, distro: str | None = None
) -> tuple[StoredRun | None, StoredRun | None]:
    """The last run (of `selection`, that ran `distro`) and the run before it of the same
    selection (that ran `distro`): (previous, current); (None, None) for an empty history."""
    current = last_run_ids(conn, 1, distro=distro, selection=selection)
    if not current:
        return None, None
    after = _stored(conn, current[0])
    previous = last_run_ids(conn, 1, distro=distro, selection=after.selection, before=after.id)
    return (_stored(conn, previous[0]) if previous else None), after
