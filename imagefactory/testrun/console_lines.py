"""Recognise the lines of a zfs-tests.sh console, each in time linear in the line's length.

A console is outside text: a test that echoes a megabyte without a newline, a kernel message
interleaved into a result line, a zts-report section garbled by a serial line.  A regex with
overlapping or lazy quantifiers turns such a line into minutes of backtracking
(`'FAIL a (x)y ' * 16000` once took 21 s), so every pattern here is built to fail fast:
possessive quantifiers (`++`, `*+`) over character classes that stop at the next delimiter,
numbers bounded in length (`int()` refuses more than 4,300 digits), and, where a pattern
would need "anything up to the end of the line", plain string methods instead.  Result lines
are still searched for, not anchored: CI prefixes and noise may come first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESULT_LINE = re.compile(
    r"(?:\[(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{1,32}+)\]\s++)?"
    r"Test(?:\s++\((?P<ident>[^()\n]{0,64}+)\))?:\s++(?P<path>\S++)"
    r"\s++\(run as (?P<user>[^()\n]{0,64}+)\)"
    r"\s++\[(?P<dur>[0-9]{1,9}+(?::[0-9]{1,9}+){1,2}+)\]\s++\[(?P<result>[A-Z]++)\]"
    r"(?P<reran>\s++\(RERAN\))?"
)
"""`[ts] Test (ident): <path> (run as <user>) [MM:SS] [RESULT] (RERAN)`, ts/ident/RERAN optional."""

_REPORT_ENTRY = re.compile(r"(?<!\S)([A-Z]{3,}+)\s++(\S++)\s++\(")
RUNNING_TIME = re.compile(r"Running Time:\s++([0-9]{1,9}+):([0-9]{2}):([0-9]{2})")
PERCENT = re.compile(r"Percent passed:\s++([0-9]{1,9}+(?:\.[0-9]{1,9}+)?+)%")
REMOVED_TEST = re.compile(r"Warning: Test '([^'\n]++)' removed from TestGroup '([^'\n]++)'")
NOT_ADDED_TEST = re.compile(r"Warning: Test '([^'\n]++)' not added to this run")
NOT_ADDED_GROUP = re.compile(r"Warning: TestGroup '([^'\n]++)' not added to this run")
_TOOL = re.compile(r"(?:zfs-tests\.sh|test-runner(?:\.py)?): ")

DIAGNOSTIC_MAX = 300
"""A diagnostic quotes at most this much of its line: a runaway line is not a message."""


def duration_s(text: str) -> float:
    """`MM:SS` or `HH:MM:SS` (the first field may exceed 59) in seconds."""
    seconds = 0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return float(seconds)


def summary_entry(stripped: str) -> tuple[str, int] | None:
    """`PASS\\t  96` (after any CI prefix, `[vm1: 10:00:05] PASS 96`) as ("PASS", 96).

    The key is an upper-case word of three or more letters standing at the start or after
    whitespace or `]`; the count the line's last field.
    """
    parts = stripped.rsplit(None, 2)
    if len(parts) < 2:
        return None
    word, count = parts[-2].rpartition("]")[2], parts[-1]
    if not (count.isascii() and count.isdigit()) or len(count) > 12:
        return None
    if len(word) < 3 or not (word.isascii() and word.isalpha() and word.isupper()):
        return None
    return word, int(count)


@dataclass(frozen=True, slots=True)
class ReportLine:
    result: str
    name: str
    detail: str


def report_line(stripped: str) -> ReportLine | None:
    """`    FAIL casenorm/x (https://github.com/openzfs/zfs/issues/7633)` under a zts-report
    header: the first `WORD name (` on the line, the detail up to the line's last `)`."""
    if not stripped.endswith(")") or stripped.endswith(":"):
        return None
    match = _REPORT_ENTRY.search(stripped)
    if match is None:
        return None
    return ReportLine(match.group(1), match.group(2), stripped[match.end() : -1])


def log_directory(line: str) -> str | None:
    """The path after `Log directory:`; None for zts-report's "Could not determine ..."."""
    _, found, value = line.partition("Log directory:")
    value = value.strip()
    if not found or not value or any(c.isspace() for c in value):
        return None
    return value


def tool_failure(line: str) -> str | None:
    """`zfs-tests.sh: Failed file exists: ...` (or test-runner's), shortened to a message."""
    match = _TOOL.search(line)
    if match is None:
        return None
    text = line[match.start() :].rstrip()
    if len(text) <= match.end() - match.start():
        return None
    return text if len(text) <= DIAGNOSTIC_MAX else text[: DIAGNOSTIC_MAX - 1] + "…"
