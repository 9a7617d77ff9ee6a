"""Parse the console output of OpenZFS's zfs-tests.sh, whatever version or host produced it.

zfs-tests.sh exits 0 when nothing ran and when it printed its usage for an unknown flag, so
its exit status cannot be trusted: the verdict comes from reading what it printed.  The
parser accepts the line forms of 2.2/2.3 (`Test: <path> (run as u) [MM:SS] [PASS]`) and of
2.4+ (the same behind a `[ISO timestamp]`), the ` (RERAN)` suffix, any upper-case result
word, the Results Summary (which prints only non-zero keys), "Running Time", "Percent
passed", "Log directory", test-runner's verification warnings (tests missing from the
installed suite) and zts-report's expected/unexpected sections.

Logs from elsewhere carry noise: terminal escapes of every ECMA-48 kind (removed first, see
`escapes`), CI prefixes such as `[vm1: 12:00:00]`, serial-console carriage returns, lines a
megabyte long.  Result lines are searched for, not anchored, and every line is read in time
linear in its length (`console_lines`).

A console can hold several runs: `zfs-tests.sh -R` reruns flaky failures after the first
summary, the lab's own retries append their reruns after it, and CI concatenates the
consoles of several VMs.  Each summary closes a segment; a test that reappears in a later
segment supersedes its earlier result (and its counts), so the final summary matches what
zts-report judged, and the test keeps the result of every segment as its `attempts`.

Each printed summary is checked against the result lines of its segment: a disagreement is
kept in `summary_mismatch`, and a FAIL, KILLED or unknown result that the summary counts but
no line shows (`unseen_failures`) fails the run, never passes it: a dropped line must not
turn a failure green.  Quiet runs (`-q`) print no line for a PASS, so more PASS counted than
shown is reported but is no failure.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from imagefactory.errors import ImageFactoryError
from imagefactory.testrun import console_lines as cl
from imagefactory.testrun.escapes import decode_console, strip_escapes
from imagefactory.testrun.summary_check import summary_mismatch
from imagefactory.testrun.test_logs import locate_test_logs as locate_test_logs  # re-export

PASS = "PASS"
FAIL = "FAIL"
SKIP = "SKIP"
KILLED = "KILLED"
RERAN = "RERAN"
ABSENT = "ABSENT"
"""Not a test-runner result: the test is not in the installed suite's version (never a failure)."""

Category = Literal["pass", "fail", "skip", "absent", "killed"]

_CATEGORIES: dict[str, Category] = {
    PASS: "pass",
    SKIP: "skip",
    KILLED: "killed",
    ABSENT: "absent",
    FAIL: "fail",
}

# Worst first: the order used when one name has several results in one run (-I iterations).
_SEVERITY: dict[Category, int] = {"killed": 4, "fail": 3, "skip": 2, "pass": 1, "absent": 0}


def category(result: str) -> Category:
    """Map a result word to its matrix category; unknown words (UNKNOWN...) are failures."""
    return _CATEGORIES.get(result, "fail")


def is_failure(result: str) -> bool:
    """FAIL, KILLED and any result word test-runner may invent later; never SKIP or ABSENT."""
    return category(result) in ("fail", "killed")


class NoResultsError(ImageFactoryError):
    """The log holds no test results: zfs-tests.sh ran nothing, which is never a pass."""

    exit_status = 1


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test's result; `name` is its path under tests/functional (or perf/regression).

    `attempts` is the result of each segment the test ran in, first to last: a FAIL fixed by
    a rerun is `("FAIL", "PASS")`.  The last is `result`; left empty, it is `(result,)`.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    result: str
    duration_s: float | None = None
    reran: bool = False
    identifier: str | None = None
    user: str | None = None
    timestamp: str | None = None
    note: str | None = None
    attempts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.attempts:
            object.__setattr__(self, "attempts", (self.result,))

    @property
    def category(self) -> Category:
        return category(self.result)

    @property
    def key(self) -> str:
        """Unique within a run: a `:Linux` section's setup/cleanup share their plain name."""
        return self.name if self.identifier is None else f"{self.name} ({self.identifier})"

    @property
    def group(self) -> str:
        """The test's directory (`cli_root/zpool_create`), the unit of runfile sections."""
        head, _, _ = self.name.rpartition("/")
        return head or self.name

    def to_json(self) -> dict[str, Any]:
        """`attempts` appears only for a test that ran more than once (the JSON stays small)."""
        data: dict[str, Any] = {
            "name": self.name,
            "result": self.result,
            "duration_s": self.duration_s,
            "reran": self.reran,
        }
        for key in ("identifier", "user", "timestamp", "note"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if len(self.attempts) > 1:
            data["attempts"] = list(self.attempts)
        return data


@dataclass(frozen=True, slots=True)
class ReportEntry:
    """A line of a zts-report section: `    FAIL casenorm/x (reason or "expected PASS")`."""

    name: str
    result: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "result": self.result, "detail": self.detail}


@dataclass(slots=True)
class ParsedRun:
    """Everything a console log says about one zfs-tests.sh invocation (or several, merged).

    `summary_mismatch` is None when every printed Results Summary agrees with the result
    lines of its segment; otherwise `{"summary": {word: n}, "rows": {word: n},
    "unseen_failures": {word: n}}` over the words that disagree (`segments`, 1-based, is
    added when the console printed more than one summary).
    """

    tests: list[TestResult] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)
    summary_printed: bool = False
    complete: bool = False
    running_time_s: int | None = None
    percent_passed: float | None = None
    log_dir: str | None = None
    line_format: Literal["2.4", "2.2"] | None = None
    report_present: bool = False
    expected: list[ReportEntry] = field(default_factory=list)
    unexpected: list[ReportEntry] = field(default_factory=list)
    unexpected_pass: list[ReportEntry] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removed_groups: list[str] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    summary_mismatch: dict[str, Any] | None = None

    @property
    def has_results(self) -> bool:
        """True when any test ran (with -q, passing tests appear only in the summary)."""
        return bool(self.tests) or any(n > 0 for k, n in self.summary.items() if k != RERAN)

    @property
    def unseen_failures(self) -> int:
        """FAIL, KILLED or unknown results a Results Summary counts that no result line shows."""
        if self.summary_mismatch is None:
            return 0
        return sum(self.summary_mismatch["unseen_failures"].values())

    def unexpected_failures(self) -> list[str]:
        """Names of results that should fail the run.

        zts-report's verdict when it was printed (it knows the expected failures and flaky
        tests of its own version); otherwise every FAIL, KILLED or unknown result.  Either
        way, failures the summary counts without a result line come last, as one pseudo
        name per word, `(summary: 1 FAIL with no result line)`: no test has that name, but
        the run cannot pass while its summary says something failed.
        """
        if self.report_present:
            names = [entry.name for entry in self.unexpected]
        else:
            names = [t.name for t in self.tests if is_failure(t.result)]
        if self.summary_mismatch is not None:
            for word, n in self.summary_mismatch["unseen_failures"].items():
                names.append(f"(summary: {n} {word} with no result line)")
        return names

    def mismatch_line(self) -> str | None:
        """One line for a report when the Results Summary and the result lines disagree."""
        mismatch = self.summary_mismatch
        if mismatch is None:
            return None
        counted = ", ".join(f"{k} {n}" for k, n in mismatch["summary"].items())
        shown = ", ".join(f"{k} {n}" for k, n in mismatch["rows"].items())
        line = f"Results Summary counts {counted}; the result lines show {shown}"
        if self.unseen_failures:
            line += f" ({self.unseen_failures} failure(s) with no result line: a failure)"
        return line

    def require_results(self, source: str) -> ParsedRun:
        """Return self, or raise NoResultsError naming why nothing ran when the log says so."""
        if self.has_results:
            return self
        why = "; ".join(self.diagnostics[:3])
        raise NoResultsError(
            f"{source}: no test results (zfs-tests.sh ran no test)" + (f": {why}" if why else ""),
            hint="check the selection (tags, runfile, test path) and the suite's flags "
            "for this version; zfs-tests.sh exits 0 even when nothing ran",
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "summary": dict(self.summary),
            "summary_printed": self.summary_printed,
            "summary_mismatch": self.summary_mismatch,
            "tests": [t.to_json() for t in self.tests],
            "unexpected": [e.to_json() for e in self.unexpected],
            "expected": [e.to_json() for e in self.expected],
            "unexpected_pass": [e.to_json() for e in self.unexpected_pass],
            "report_present": self.report_present,
            "running_time_s": self.running_time_s,
            "percent_passed": self.percent_passed,
            "log_dir": self.log_dir,
            "line_format": self.line_format,
            "removed": list(self.removed),
            "removed_groups": list(self.removed_groups),
            "diagnostics": list(self.diagnostics),
        }


_SUITE_PREFIX = re.compile(r"(?:^|/)tests/(?:functional|perf/regression)/")

_REPORT_HEADERS: dict[str, Literal["expected", "unexpected_pass", "unexpected"]] = {
    "Tests with results other than PASS that are expected:": "expected",
    "Tests with result of PASS that are unexpected:": "unexpected_pass",
    "Tests with results other than PASS that are unexpected:": "unexpected",
}


def name_from_path(path: str) -> str:
    """`/usr/share/zfs/zfs-tests/tests/functional/atime/atime_001_pos` -> `atime/atime_001_pos`.

    Paths outside the suite's layout (a custom test dir) keep their full path, so they stay
    unique; a `.ksh`/`.sh` suffix (runfile warnings name files) is dropped.
    """
    starts = [m.end() for m in _SUITE_PREFIX.finditer(path)]
    name = path[starts[-1] :] if starts else path
    for suffix in (".ksh", ".sh"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name


@dataclass(slots=True)
class _Segment:
    """The result lines up to (and including) one Results Summary."""

    tests: list[TestResult] = field(default_factory=list)
    summary: dict[str, int] | None = None
    running_time_s: int | None = None
    percent_passed: float | None = None


def _count(tests: Iterable[TestResult]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for t in tests:
        counts[t.result] += 1
        if t.reran:
            counts[RERAN] += 1
    return counts


class _Parser:
    """A line-at-a-time state machine; states are the Results Summary and the report lists."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = [_Segment()]
        self.run = ParsedRun()
        self.in_summary = False
        self.section: Literal["expected", "unexpected_pass", "unexpected"] | None = None
        self.reports: dict[str, dict[str, ReportEntry]] = {}

    def feed(self, raw: str) -> None:
        line = strip_escapes(raw).rstrip("\r\n")
        if "Test" in line:
            match = cl.RESULT_LINE.search(line)
            if match:
                self._test(match)
                return
        stripped = line.strip()
        if self.in_summary:
            key = cl.summary_entry(stripped) if stripped else None
            if key:
                summary = self.segments[-1].summary
                assert summary is not None
                summary[key[0]] = key[1]
                return
            if stripped:
                self.in_summary = False
        if self.section is not None:
            # zts-report prints a section's entries right under its header; the blank line
            # before the next header (or anything else) ends it.
            if not stripped:
                self.section = None
                return
            entry = cl.report_line(stripped)
            if entry:
                report = ReportEntry(entry.name, entry.result, entry.detail)
                self.reports.setdefault(self.section, {})[entry.name] = report
                return
            self.section = None
        if not stripped:
            return
        self._other(line, stripped)

    def _test(self, m: re.Match[str]) -> None:
        self.in_summary = False
        self.section = None
        if self.segments[-1].summary is not None:
            self.segments.append(_Segment())
        ts = m.group("ts")
        if self.run.line_format is None or ts:
            self.run.line_format = "2.4" if ts else "2.2"
        self.segments[-1].tests.append(
            TestResult(
                name=name_from_path(m.group("path")),
                result=m.group("result"),
                duration_s=cl.duration_s(m.group("dur")),
                reran=m.group("reran") is not None,
                identifier=m.group("ident"),
                user=m.group("user"),
                timestamp=ts,
            )
        )

    def _other(self, line: str, stripped: str) -> None:
        segment = self.segments[-1]
        if stripped.endswith("Results Summary"):
            if segment.summary is not None:
                segment = _Segment()
                self.segments.append(segment)
            segment.summary = {}
            self.in_summary = True
            self.section = None
            return
        for header, section in _REPORT_HEADERS.items():
            if stripped.endswith(header):
                self.section = section
                self.run.report_present = True
                self.reports.setdefault(section, {})
                return
        if "Running Time:" in line and (m := cl.RUNNING_TIME.search(line)):
            h, mi, s = (int(g) for g in m.groups())
            segment.running_time_s = h * 3600 + mi * 60 + s
        elif "Percent passed:" in line and (m := cl.PERCENT.search(line)):
            segment.percent_passed = float(m.group(1))
        elif "Log directory:" in line:
            # zts-report prints "Could not determine log directory." when it found nothing.
            self.run.log_dir = cl.log_directory(line) or self.run.log_dir
        elif "Warning: Test" in line:
            if m := cl.REMOVED_TEST.search(line):
                self._removed(name_from_path(f"{m.group(2)}/{m.group(1)}"))
            elif m := cl.NOT_ADDED_TEST.search(line):
                self._removed(name_from_path(m.group(1)))
        elif "Warning: TestGroup" in line and (m := cl.NOT_ADDED_GROUP.search(line)):
            group = name_from_path(m.group(1))
            if group not in self.run.removed_groups:
                self.run.removed_groups.append(group)
        elif "No test results were found." in line:
            self.run.diagnostics.append("zts-report: no test results were found")
        elif "zfs-tests.sh [-h" in line:
            self.run.diagnostics.append(
                "zfs-tests.sh printed its usage (an option this version does not know?)"
            )
        elif ("zfs-tests.sh: " in line or "test-runner" in line) and (
            failure := cl.tool_failure(line)
        ):
            self.run.diagnostics.append(failure)

    def _removed(self, name: str) -> None:
        if name not in self.run.removed:
            self.run.removed.append(name)

    def finish(self) -> ParsedRun:
        run = self.run
        final: dict[str, tuple[int, TestResult]] = {}
        attempts: dict[str, list[str]] = {}
        lines_by_key: dict[str, list[tuple[int, TestResult]]] = {}
        counts: Counter[str] = Counter()
        summaries = [s for s in self.segments if s.summary is not None]
        for index, segment in enumerate(self.segments):
            counts.update(segment.summary if segment.summary is not None else _count(segment.tests))
            seen_here: dict[str, TestResult] = {}
            for t in segment.tests:
                lines_by_key.setdefault(t.key, []).append((index, t))
                previous = seen_here.get(t.key)
                if previous is None or _SEVERITY[t.category] > _SEVERITY[previous.category]:
                    seen_here[t.key] = t
            for key, t in seen_here.items():
                if key in final and (before := final[key][0]) < index:
                    # A later run (zfs-tests.sh -R, a retry) superseded this test: take the
                    # lines of its previous final segment out of the counts (earlier ones
                    # went when that one superseded them) so the summary is the final verdict.
                    counts.subtract(_count(o for i, o in lines_by_key[key] if i == before))
                final[key] = (index, t)
                attempts.setdefault(key, []).append(t.result)
        # A test seen in one segment already holds its one attempt (dataclasses.replace is
        # slow enough to double the parse of a 1,500-test log if done for every test).
        run.tests = [
            t if len(attempts[key]) == 1 else dataclasses.replace(t, attempts=tuple(attempts[key]))
            for key, (_, t) in final.items()
        ]
        run.summary = {k: n for k, n in counts.items() if n > 0}
        run.summary_printed = bool(summaries)
        run.summary_mismatch = summary_mismatch(
            [(s.summary or {}, _count(s.tests)) for s in summaries], failure=is_failure
        )
        run.complete = bool(summaries) and all(
            s.summary is not None for s in self.segments if s.tests
        )
        times = [s.running_time_s for s in summaries if s.running_time_s is not None]
        run.running_time_s = sum(times) if times else None
        if len(summaries) == 1:
            run.percent_passed = summaries[0].percent_passed
        elif summaries:
            total = sum(n for k, n in run.summary.items() if k != RERAN)
            passed = run.summary.get(PASS, 0)
            run.percent_passed = round(100.0 * passed / total, 1) if total else 0.0
        run.expected = list(self.reports.get("expected", {}).values())
        run.unexpected_pass = list(self.reports.get("unexpected_pass", {}).values())
        run.unexpected = list(self.reports.get("unexpected", {}).values())
        return run


def parse_lines(lines: Iterable[str]) -> ParsedRun:
    """Parse console lines (with or without line endings)."""
    parser = _Parser()
    for line in lines:
        parser.feed(line)
    return parser.finish()


def parse_log(text: str) -> ParsedRun:
    """Parse a whole console log held in memory.

    Lines end at LF only: `str.splitlines` would also split at the form feeds, vertical
    tabs, file separators and NEL that stray through a serial console, cutting a result
    line in two; those are control characters, removed like the escapes.
    """
    return parse_lines(text.split("\n"))


def parse_bytes(data: bytes) -> ParsedRun:
    """Parse a console's raw bytes; invalid UTF-8 is replaced, never fatal (see escapes)."""
    return parse_log(decode_console(data))


def parse_file(path: Path) -> ParsedRun:
    """Parse a console log file; undecodable bytes (serial consoles) are replaced, not fatal."""
    return parse_bytes(path.read_bytes())


def summary_counts(tests: Iterable[TestResult]) -> dict[str, int]:
    """Counts like the Results Summary's (non-zero keys only), from result lines."""
    return {k: n for k, n in _count(tests).items() if n > 0}


def merge_counts(*parts: Mapping[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for part in parts:
        total.update(part)
    return {k: n for k, n in total.items() if n > 0}
