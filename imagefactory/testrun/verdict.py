"""The verdict vocabulary: what one test's results came to once judged against the baselines.

A result word (PASS, FAIL, KILLED, SKIP...) is what the suite printed; a verdict is what it
means for the run.  The two differ exactly where a lab can lie: a known failure is not a
regression (`expected`), a test that failed once and passed on its retry is not a pass
(`flaky`), and a known failure that passed means a baseline entry has gone stale
(`unexpected-pass`).  Every report (matrix, summary.md, JUnit, run.json, the history, the
exit status) speaks this one vocabulary, so "green" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    """Passed, and no baseline entry expected otherwise."""
    EXPECTED = "expected"
    """A non-PASS result a baseline entry covers (known or flaky); its reason is shown."""
    UNEXPECTED_FAILURE = "unexpected-failure"
    """FAIL, KILLED or an unknown result word that no baseline entry covers: a regression."""
    UNEXPECTED_PASS = "unexpected-pass"
    """A `known` entry's test passed: the entry is stale (reported; exit status unchanged)."""
    SKIP = "skip"
    """SKIP with no baseline entry: listed apart (a missing tool shows here), never a failure."""
    FLAKY = "flaky"
    """Failed, then passed on a retry (the attempts are kept)."""
    ABSENT = "absent"
    """Selected but not in this suite version: never a failure."""
    CRASHED = "crashed"
    """The guest died mid-test; judged like an unexpected failure."""


FAILING: frozenset[Verdict] = frozenset({Verdict.UNEXPECTED_FAILURE, Verdict.CRASHED})
"""The verdicts that make a distro failed and the stage exit 1."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a baseline entry can be scoped by; None where the run does not know the value."""

    distro: str | None = None
    zfs_version: str | None = None
    kernel: str | None = None
    accel: str | None = None


@dataclass(frozen=True, slots=True)
class TestVerdict:
    """One test's verdict, with the evidence it rests on."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    """The test's key (path under tests/functional, `(identifier)` for setup/cleanup)."""
    verdict: Verdict
    result: str
    """The final result word (after retries)."""
    attempts: tuple[str, ...] = ()
    """Every attempt's result word, first to last (one element without retries)."""
    reason: str | None = None
    """The matching baseline entry's reason, or why the verdict was reached."""
    entry: str | None = None
    """Where the matching baseline entry lives (`baselines/linux.yaml:12`)."""

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "verdict": self.verdict.value,
            "result": self.result,
            "attempts": list(self.attempts),
        }
        if self.reason is not None:
            data["reason"] = self.reason
        if self.entry is not None:
            data["entry"] = self.entry
        return data
