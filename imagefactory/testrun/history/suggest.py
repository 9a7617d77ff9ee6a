"""Baseline entries suggested by the history: tests that fail often, but not always.

A test failing in some runs and passing in others is what a `flaky` entry is for; the entry
carries the observed rate in kdevops' notation (`F:3/16`) so a reader can judge it, and is
scoped to the distro it was seen on.  A test that failed every time is broken, not flaky:
it is not suggested (a `known` entry for it needs an issue, which only a person can name).
Tests a baseline entry already covers are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import yaml

from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.history.flaky import FlakyStat
from imagefactory.testrun.verdict import RunContext

Covered = Callable[[FlakyStat], bool]


@dataclass(frozen=True, slots=True)
class Suggestion:
    stat: FlakyStat
    window: int

    def entry(self) -> dict[str, object]:
        s = self.stat
        results: object = list(s.results) if len(s.results) > 1 else (s.results or ("FAIL",))[0]
        since = s.last_failed[:10]
        return {
            "test": s.test,
            "result": results,
            "kind": "flaky",
            "reason": (
                f"{s.reason_rate} on {s.distro} in the last {self.window} runs "
                f"({s.rate:.0%}, {s.severity}); last failed in run {s.last_failed_run} "
                f"({since})"
            ),
            "distros": [s.distro],
        }


def suggestions(
    stats: Sequence[FlakyStat],
    window: int,
    *,
    min_rate: float,
    covered: Covered | None = None,
) -> tuple[list[Suggestion], int]:
    """Suggestions for tests failing at `min_rate` or more but not always, and how many
    such tests a baseline entry already covers."""
    found: list[Suggestion] = []
    seen: set[tuple[str, str]] = set()
    already = 0
    for stat in stats:  # worst first: a `(Linux)` setup row and its plain twin give one entry
        if stat.always or stat.rate < min_rate or (stat.distro, stat.test) in seen:
            continue
        seen.add((stat.distro, stat.test))
        if covered is not None and covered(stat):
            already += 1
            continue
        found.append(Suggestion(stat, window))
    return found, already


def covered_by(baseline: Baseline, contexts: Mapping[str, RunContext]) -> Covered:
    """Whether entries of `baseline` already expect every failing word of a test, in the
    distro's latest context (entries whose scope that context cannot decide count too:
    a person wrote them for this test)."""

    def covered(stat: FlakyStat) -> bool:
        context = contexts.get(stat.distro) or RunContext(distro=stat.distro)
        lookup = baseline.lookup(stat.test, context)
        entries = [*lookup.entries, *(entry for entry, _ in lookup.unknown)]
        return bool(entries) and all(any(e.covers(w) for e in entries) for w in stat.results)

    return covered


def render_yaml(found: Sequence[Suggestion], *, header: Sequence[str] = ()) -> str:
    """Ready-to-paste entries, each preceded by a comment line; loads as a baseline file."""
    lines = [f"# {line}" for line in header]
    for suggestion in found:
        s = suggestion.stat
        lines.append(f"# {s.distro}: {s.key}: {s.failures} of {s.runs} runs failed")
        text = yaml.safe_dump(
            [suggestion.entry()], sort_keys=False, default_flow_style=None, width=1000
        )
        lines += text.rstrip("\n").splitlines()
    return "\n".join(lines) + "\n"
