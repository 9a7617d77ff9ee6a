"""Judge parsed results against a baseline: every test gets a verdict, with its evidence.

The result word is what the suite printed; the verdict is what it means here (see
`verdict.py`).  Rules, in order, for one test:

- ABSENT → `absent`; the pseudo-result CRASHED (the guest died during it) → `crashed`.
- A final PASS after a failed attempt → `flaky` (the attempts are kept).
- PASS → `unexpected-pass` when the most specific entry naming the test is `known` (the
  entry is stale), else `pass`.
- Anything else → `expected` when an entry names the test and lists that result (the most
  specific such entry gives the reason); a SKIP whose group's `setup` was an expected SKIP
  is expected for the same reason (zts-report does the same); otherwise SKIP → `skip` and
  FAIL, KILLED or an unknown word → `unexpected-failure`.

Without a baseline (`--no-baseline`) the same rules apply with no entries: raw results.
zts-report's own sections, when the console has them, are compared with our verdicts and
every disagreement is reported; they no longer decide.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from imagefactory.testrun.baseline import Baseline, Entry
from imagefactory.testrun.results import (
    ABSENT,
    PASS,
    SKIP,
    ParsedRun,
    TestResult,
    is_failure,
)
from imagefactory.testrun.verdict import FAILING, RunContext, TestVerdict, Verdict

CRASHED_RESULT = "CRASHED"
"""Not printed by test-runner: the host records it for the test a dead guest was running."""

_HINTS = {
    "distros": "--distro",
    "zfs": "--zfs-version",
    "kernel": "--kernel",
    "accel": "--accel",
}


@dataclass
class Judgement:
    """Every test's verdict, and what a reader must know about how they were reached."""

    verdicts: dict[str, TestVerdict] = field(default_factory=dict)
    """By `TestResult.key`, in the order the tests ran."""
    warnings: list[str] = field(default_factory=list)
    """Entries not applied because the run does not know a value they are scoped by."""
    review: list[str] = field(default_factory=list)
    """Applied entries past their `expires` date."""
    disagreements: list[str] = field(default_factory=list)
    """Where zts-report's sections say otherwise than our verdicts."""
    summary_mismatch: dict[str, Any] | None = None
    """The parser's account of Results Summary counts the result lines do not show."""
    mismatch_line: str | None = None
    """The same, as one line for a report."""
    unseen_failures: int = 0
    """FAIL/KILLED a Results Summary counts that no result line shows: the run failed."""

    def of(self, *verdicts: Verdict) -> list[TestVerdict]:
        return [v for v in self.verdicts.values() if v.verdict in verdicts]

    @property
    def failing(self) -> list[TestVerdict]:
        return [v for v in self.verdicts.values() if v.verdict in FAILING]

    @property
    def failed(self) -> bool:
        """An unexpected failure or crash, or a failure only the summary counted."""
        return bool(self.failing) or self.unseen_failures > 0

    def counts(self) -> dict[str, int]:
        counted = Counter(v.verdict for v in self.verdicts.values())
        return {verdict.value: counted.get(verdict, 0) for verdict in Verdict}

    def to_json(self) -> dict[str, Any]:
        """The shape `klab results judge --json` prints (keys fixed by the issue)."""
        return {
            "verdicts": {key: v.verdict.value for key, v in self.verdicts.items()},
            "unexpected_failures": [v.to_json() for v in self.failing],
            "unexpected_passes": [v.to_json() for v in self.of(Verdict.UNEXPECTED_PASS)],
            "expected": [v.to_json() for v in self.of(Verdict.EXPECTED)],
            "skips": [v.to_json() for v in self.of(Verdict.SKIP)],
            "summary_mismatch": self.summary_mismatch,
            "counts": self.counts(),
        }


class _Judge:
    def __init__(self, baseline: Baseline | None, context: RunContext, today: date) -> None:
        self.baseline = baseline
        self.context = context
        self.today = today
        self.judgement = Judgement()
        self._warned: set[str] = set()
        self._reviewed: set[str] = set()

    def _entries(self, name: str, result: str) -> list[Entry]:
        """The entries that apply (most specific last), warning about undecidable ones."""
        if self.baseline is None:
            return []
        lookup = self.baseline.lookup(name, self.context)
        for entry, missing in lookup.unknown:
            relevant = (result == PASS and entry.spec.kind == "known") or entry.covers(result)
            if relevant and entry.origin not in self._warned:
                self._warned.add(entry.origin)
                hints = ", ".join(_HINTS[m] for m in missing)
                self.judgement.warnings.append(
                    f"{entry.origin}: {entry.spec.test}: not applied: this run's "
                    f"{' and '.join(missing)} is unknown (give {hints})"
                )
        return lookup.entries

    def _use(self, entry: Entry) -> Entry:
        if entry.expired(self.today) and entry.origin not in self._reviewed:
            self._reviewed.add(entry.origin)
            self.judgement.review.append(
                f"{entry.origin}: {entry.spec.test}: expired on {entry.spec.expires}: "
                f"still applied; check whether it still holds ({entry.spec.reason})"
            )
        return entry

    def verdict(self, test: TestResult) -> TestVerdict:
        attempts = test.attempts or (test.result,)
        result = test.result

        def make(verdict: Verdict, reason: str | None, entry: Entry | None = None) -> TestVerdict:
            origin = self._use(entry).origin if entry is not None else None
            return TestVerdict(test.key, verdict, result, attempts, reason, origin)

        if result == ABSENT:
            return make(Verdict.ABSENT, test.note)
        if result == CRASHED_RESULT:
            return make(Verdict.CRASHED, test.note or "the guest died during this test")
        if result == PASS:
            failed = [a for a in attempts[:-1] if is_failure(a)]
            if failed:
                covering = [e for e in self._entries(test.name, failed[0]) if e.covers(failed[0])]
                entry = covering[-1] if covering else None
                tries = f"{', '.join(attempts)}: passed on attempt {len(attempts)}"
                why = f"{tries}; {entry.spec.reason}" if entry is not None else tries
                return make(Verdict.FLAKY, why, entry)
            entries = self._entries(test.name, PASS)
            if entries and entries[-1].spec.kind == "known":
                entry = entries[-1]
                expects = "/".join(entry.spec.result)
                return make(
                    Verdict.UNEXPECTED_PASS, f"expected {expects}: {entry.spec.reason}", entry
                )
            return make(Verdict.PASS, None)
        entries = self._entries(test.name, result)
        covering = [e for e in entries if e.covers(result)]
        if covering:
            return make(Verdict.EXPECTED, covering[-1].spec.reason, covering[-1])
        if result == SKIP:
            return make(Verdict.SKIP, test.note)
        reason: str | None = test.note
        if entries:
            other = entries[-1]
            reason = (
                f"the baseline expects {'/'.join(other.spec.result)} ({other.origin}), not {result}"
            )
        return make(Verdict.UNEXPECTED_FAILURE, reason)

    def judge(self, tests: Iterable[TestResult]) -> Judgement:
        tests = list(tests)
        verdicts = self.judgement.verdicts
        for test in tests:
            verdicts[test.key] = self.verdict(test)
        # A group whose setup SKIPped skips all its tests: they share the setup's reason.
        setups = {
            t.group: verdicts[t.key]
            for t in tests
            if t.name.endswith("/setup") and t.result == SKIP
        }
        for test in tests:
            setup = setups.get(test.group)
            current = verdicts[test.key]
            if (
                setup is not None
                and setup.verdict is Verdict.EXPECTED
                and current.verdict is Verdict.SKIP
                and current.name != setup.name
            ):
                verdicts[test.key] = TestVerdict(
                    current.name,
                    Verdict.EXPECTED,
                    current.result,
                    current.attempts,
                    f"its group's setup was skipped: {setup.reason}",
                    setup.entry,
                )
        return self.judgement


def judge_tests(
    tests: Iterable[TestResult],
    baseline: Baseline | None,
    context: RunContext,
    *,
    today: date | None = None,
) -> Judgement:
    """Verdicts for results that do not come with a console (recipes, stored runs)."""
    return _Judge(baseline, context, today or date.today()).judge(tests)


def _disagreements(parsed: ParsedRun, verdicts: Mapping[str, TestVerdict]) -> list[str]:
    """zts-report's sections against our verdicts, by test path."""
    by_name: dict[str, TestVerdict] = {}
    for key, verdict in verdicts.items():
        by_name.setdefault(key.split(" (", 1)[0], verdict)
    lines: list[str] = []

    def differs(name: str, theirs: str, agree: bool) -> None:
        ours = by_name.get(name)
        if ours is not None and not agree:
            where = f" [{ours.entry}]" if ours.entry else ""
            lines.append(f"{name}: zts-report: {theirs}; klab: {ours.verdict}{where}")

    listed = set()
    for entry in parsed.unexpected:
        listed.add(entry.name)
        ours = by_name.get(entry.name)
        differs(entry.name, f"unexpected {entry.result}", ours is None or ours.failing)
    for entry in parsed.expected:
        listed.add(entry.name)
        ours = by_name.get(entry.name)
        agree = ours is None or not ours.failing
        differs(entry.name, f"expected {entry.result} ({entry.detail})", agree)
    for entry in parsed.unexpected_pass:
        ours = by_name.get(entry.name)
        agree = ours is None or ours.verdict is Verdict.UNEXPECTED_PASS
        differs(entry.name, f"unexpected PASS ({entry.detail})", agree)
    for name, ours in by_name.items():
        if ours.failing and name not in listed:
            differs(name, "not listed as unexpected", False)
    return lines


def judge_run(
    parsed: ParsedRun,
    baseline: Baseline | None,
    context: RunContext,
    *,
    tests: Sequence[TestResult] | None = None,
    today: date | None = None,
) -> Judgement:
    """Verdicts for a parsed console (`tests` overrides its rows, e.g. with absent ones)."""
    judgement = judge_tests(
        parsed.tests if tests is None else tests, baseline, context, today=today
    )
    if parsed.report_present:
        judgement.disagreements = _disagreements(parsed, judgement.verdicts)
    judgement.summary_mismatch = parsed.summary_mismatch
    judgement.mismatch_line = parsed.mismatch_line()
    judgement.unseen_failures = parsed.unseen_failures
    return judgement


def kernel_from_system_txt(path: Path) -> str | None:
    """The kernel release from the guest's system.txt (`kernel: Linux host 6.12.48 ...`)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("kernel:"):
            fields = line.split()
            # `uname -a`: sysname nodename release ...
            return fields[3] if len(fields) > 3 and fields[1] == "Linux" else None
    return None
