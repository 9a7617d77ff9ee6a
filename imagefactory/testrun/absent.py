"""Tests a curated runfile names but a distro's suite version does not have.

One curated runfile (quick, linux-fault) serves suites from 2.2.2 to 2.4.x; tests added in
later versions simply do not exist in older suites.  Those are recorded as ABSENT with the
suite version ("∅ absent in this version" in the matrix), which is never a failure, instead
of letting test-runner drop them with a warning nobody reads.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from imagefactory.errors import UsageError
from imagefactory.testrun.results import ABSENT, TestResult, name_from_path

_NO_DEFAULT_SECTION = "\x00none"  # lets [DEFAULT] be read as an ordinary section


def absent_note(suite_version: str) -> str:
    return f"absent in zfs-tests {suite_version}"


def absent_results(names: Iterable[str], suite_version: str) -> list[TestResult]:
    """ABSENT results for `names` (deduplicated, in order), noting the suite version."""
    seen: dict[str, None] = dict.fromkeys(names)
    note = absent_note(suite_version)
    return [TestResult(name=name, result=ABSENT, note=note) for name in seen]


def with_absent(tests: Sequence[TestResult], absent: Iterable[TestResult]) -> list[TestResult]:
    """The run's results plus absent ones; a test that did run keeps its real result."""
    ran = {t.name for t in tests}
    return [*tests, *(a for a in absent if a.name not in ran)]


def present_tests(paths: Iterable[str]) -> set[str]:
    """Test names from a listing of the installed suite (`find .../tests/functional -type f`)."""
    return {name_from_path(p.strip()) for p in paths if p.strip()}


@dataclass(frozen=True, slots=True)
class FilteredRunfile:
    """A runfile reduced to the tests a suite has, and the names it had to leave out."""

    text: str
    kept: list[str]
    absent: list[str]


def _section_path(section: str) -> str:
    return section.split(":", 1)[0]


def _tests_value(section: str, raw: str) -> list[str]:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise UsageError(f"runfile section [{section}]: tests is not a list: {raw!r}") from exc
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"runfile section [{section}]: tests is not a list of names: {raw!r}")
    return [str(v) for v in value]


def runfile_tests(text: str) -> list[str]:
    """Every test name a runfile lists, in order."""
    return filter_runfile(text, present=None).kept


def filter_runfile(text: str, present: Collection[str] | None) -> FilteredRunfile:
    """Keep the tests in `present` (all when None); drop sections left with no test.

    The result is written back one key per line: zfs-tests.sh's `-T N/M` splitting greps
    `tags = ` lines and needs each list on a single line.  Comments are not kept.
    """
    parser = configparser.RawConfigParser(default_section=_NO_DEFAULT_SECTION)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UsageError(f"runfile is not valid INI: {exc}") from exc
    kept: list[str] = []
    absent: list[str] = []
    out: list[str] = []
    for section in parser.sections():
        items = dict(parser.items(section, raw=True))
        if section != "DEFAULT":
            path = _section_path(section)
            if "tests" in items:
                wanted = _tests_value(section, items["tests"])
                names = [(t, name_from_path(f"{path}/{t}")) for t in wanted]
                keep = [t for t, n in names if present is None or n in present]
                kept.extend(n for t, n in names if t in keep)
                absent.extend(n for t, n in names if t not in keep)
                if not keep:
                    continue
                items["tests"] = repr(keep)
            else:
                name = name_from_path(path)
                if present is not None and name not in present:
                    absent.append(name)
                    continue
                kept.append(name)
        out.append(f"[{section}]")
        for key, value in items.items():
            flat = " ".join(value.split())
            out.append(f"{key} = {flat}" if flat else f"{key} =")
        out.append("")
    return FilteredRunfile(text="\n".join(out), kept=kept, absent=absent)
