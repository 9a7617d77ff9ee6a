#!/usr/bin/env python3
"""Write the runfile one test run executes, reduced to tests the installed suite has.

Runs in the guest (stdlib only; python3 is there because test-runner.py needs it), before
zfs-tests.sh.  Why here and not on the host: only the guest knows which tests its suite
version ships.  A test a curated runfile names but this suite lacks is left out and listed
as absent, so the host records it as "absent in this version" instead of letting
test-runner drop it with a warning nobody reads.  The rules match the host's
imagefactory/testrun/absent.py (tests/unit/testrun/test_select_tests.py checks they agree).

    select_tests.py --suite-dir DIR --out RUNFILE --report JSON
                    [--tests FILE | --failed-in LOG] [--groups G1,G2] [--absent FILE]
                    RUNFILE...

--tests FILE   keep only these tests (one per line: `cli_root/zpool_create/zpool_create_001_pos`,
               or a bare test name); a test no runfile lists but the suite has gets a section
               of its own (with its directory's setup/cleanup), as `zfs-tests.sh -t` would
--failed-in LOG  keep only the tests that FAILed or were KILLED in LOG (a zfs-tests.sh
               console, terminal escapes and all): the runfile of a retry, each test in its
               own section's setup and cleanup
--groups G,..  keep only sections tagged G, or whose directory is G or below it
               (`cli_root`, `cli_root/zpool_create`)
--absent FILE  names the host already knows this suite lacks: reported absent as well
The report (JSON) lists the runfiles read, the tests selected and the tests absent.
A section's setup and cleanup scripts are never selected as tests themselves.
Exit status: 0 when the runfile was written (even with no test in it), 1 on bad input.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import os
import re
import sys
from pathlib import Path

_NO_DEFAULT = "\x00none"  # read [DEFAULT] as an ordinary section, never merged into others
_PREFIXES = ("tests/functional/", "tests/perf/regression/")
_SUFFIXES = ("", ".ksh", ".sh")
# ECMA-48 escapes a console may carry: CSI (any parameters, colons too), OSC and other
# strings ended by BEL or ST, charset designations, single-character escapes; C1 CSI.
_ESCAPES = re.compile(
    r"\x1b\[[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[\x20-\x2f]+[\x30-\x7e]?"
    r"|\x1b[\x30-\x7e]?"
    r"|\x9b[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
)
_RETRIED = ("FAIL", "KILLED")
ORDER_MARK = "klab-order: "


def test_name(path: str) -> str:
    """`tests/functional/atime/atime_001_pos` -> `atime/atime_001_pos` (as the host names it)."""
    cut = max((path.rfind(p) + len(p) for p in _PREFIXES if p in path), default=-1)
    name = path[cut:] if cut >= 0 else path
    for suffix in (".ksh", ".sh"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def executable(base: Path) -> bool:
    return any(
        (base.parent / (base.name + s)).is_file()
        and os.access(base.parent / (base.name + s), os.X_OK)
        for s in _SUFFIXES
    )


def as_list(section: str, key: str, raw: str) -> list[str]:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise SystemExit(f"select_tests: [{section}] {key} is not a list: {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemExit(f"select_tests: [{section}] {key} is not a list of names: {raw!r}")
    return value


def flat(value: str) -> str:
    return " ".join(value.split())


def failed_in(log: Path) -> list[str]:
    """Tests whose last result line in a zfs-tests.sh console is FAIL or KILLED, in order.

    A result line: `Test[ (ident)]: /path/to/test (run as user) [mm:ss] [RESULT][ (RERAN)]`.
    Plain string work on each line, so a hostile console costs linear time.
    """
    last: dict[str, str] = {}
    text = log.read_bytes().decode("utf-8", errors="replace")
    for raw in text.splitlines():
        line = _ESCAPES.sub("", raw).strip()
        if not line.startswith("Test") or ": " not in line:
            continue
        head, _, rest = line.partition(": ")
        if head != "Test" and not (head.startswith("Test (") and head.endswith(")")):
            continue
        words = rest.split()
        if not words:
            continue
        ending = line.removesuffix("(RERAN)").rstrip()
        if not ending.endswith("]"):
            continue
        result = ending[ending.rfind("[") + 1 : -1]
        name = test_name(words[0])
        last.pop(name, None)
        last[name] = result
    return [name for name, result in last.items() if result in _RETRIED]


class Selector:
    def __init__(self, suite: Path, tests: list[str] | None, groups: list[str] | None) -> None:
        self.suite = suite
        self.full = {t for t in tests or [] if "/" in t}
        self.bare = {t for t in tests or [] if "/" not in t}
        self.tests = tests
        self.groups = groups
        self.default: dict[str, str] | None = None
        self.sections: dict[str, dict[str, str]] = {}
        self.order: list[str] = []
        self.selected: list[str] = []
        self.absent: list[str] = []
        self.matched: set[str] = set()
        self.helpers: set[str] = set()
        """`dir/name` of every section's pre/post script: never a test of its own."""

    def wanted(self, name: str) -> bool:
        if self.tests is None:
            return True
        base = name.rsplit("/", 1)[-1]
        hit = name in self.full or base in self.bare
        if hit:
            self.matched.add(name if name in self.full else base)
        return hit

    def group_wanted(self, path: str, items: dict[str, str], default_tags: list[str]) -> bool:
        if self.groups is None:
            return True
        tags = as_list(path, "tags", items["tags"]) if "tags" in items else default_tags
        rel = test_name(path)
        return any(
            g in tags or rel == g or rel.startswith(g.rstrip("/") + "/") for g in self.groups
        )

    def add(self, section: str, items: dict[str, str], tests: list[str] | None) -> None:
        if section in self.sections:
            old = self.sections[section]
            if tests is not None and "tests" in old:
                merged = as_list(section, "tests", old["tests"])
                merged += [t for t in tests if t not in merged]
                old["tests"] = repr(merged)
            return
        entry = {k: flat(v) for k, v in items.items()}
        if tests is not None:
            entry["tests"] = repr(tests)
        self.sections[section] = entry
        self.order.append(section)

    def read(self, runfile: Path) -> None:
        parser = configparser.RawConfigParser(default_section=_NO_DEFAULT)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(runfile.read_text(encoding="utf-8"), source=str(runfile))
        except (OSError, configparser.Error) as exc:
            raise SystemExit(f"select_tests: cannot read {runfile}: {exc}") from None
        default = dict(parser.items("DEFAULT", raw=True)) if parser.has_section("DEFAULT") else {}
        if self.default is None:
            self.default = {k: flat(v) for k, v in default.items()}
        default_tags = as_list("DEFAULT", "tags", default["tags"]) if "tags" in default else []
        for section in parser.sections():
            if section == "DEFAULT":
                continue
            items = dict(parser.items(section, raw=True))
            path = section.split(":", 1)[0]
            for key in ("pre", "post"):
                script = items.get(key, default.get(key, "")).strip()
                if script:
                    self.helpers.add(test_name(f"{path}/{script}"))
            if not self.group_wanted(path, items, default_tags):
                continue
            if "tests" not in items:
                # A section without `tests` is a single test: the section path itself.
                name = test_name(path)
                if not self.wanted(name):
                    continue
                if executable(self.suite / path):
                    self.selected.append(name)
                    self.add(section, items, None)
                else:
                    self.absent.append(name)
                continue
            keep = []
            for test in as_list(section, "tests", items["tests"]):
                name = test_name(f"{path}/{test}")
                if not self.wanted(name):
                    continue
                if executable(self.suite / path / test):
                    keep.append(test)
                    self.selected.append(name)
                else:
                    self.absent.append(name)
            if keep:
                self.add(section, items, keep)

    def find_on_disk(self, wanted: str) -> str | None:
        """A test no runfile lists: its section path (relative to the suite), if it exists."""
        if "/" in wanted:
            for prefix in _PREFIXES:
                if executable(self.suite / prefix / wanted):
                    return f"{prefix}{wanted}"
            return None
        found = sorted(
            str(p.relative_to(self.suite)).removesuffix(p.suffix)
            for prefix in _PREFIXES
            if (self.suite / prefix).is_dir()
            for p in (self.suite / prefix).rglob(f"{wanted}*")
            if p.stem == wanted and p.suffix in (".ksh", ".sh", "") and os.access(p, os.X_OK)
        )
        return found[0] if len(found) == 1 else None

    def unlisted(self) -> None:
        """Tests asked for by name that no runfile lists: run them anyway if present."""
        for wanted in [*sorted(self.full), *sorted(self.bare)]:
            if wanted in self.matched:
                continue
            base = wanted.rsplit("/", 1)[-1]
            if wanted in self.helpers or base in ("setup", "cleanup"):
                self.absent.append(wanted)  # a section's setup or cleanup, not a test
                continue
            path = self.find_on_disk(wanted)
            if path is None:
                self.absent.append(wanted)
                continue
            directory, test = path.rsplit("/", 1)
            here = self.suite / directory
            items = {
                "pre": "setup" if executable(here / "setup") else "",
                "post": "cleanup" if executable(here / "cleanup") else "",
                "tags": "['functional']",
            }
            self.add(directory, items, [test])
            self.selected.append(test_name(path))

    def order_lines(self) -> list[str]:
        """`klab-order: <section> <test>...` per section, tests as the host names them."""
        lines = []
        for section in self.order:
            path = section.split(":", 1)[0]
            entry = self.sections[section]
            if "tests" in entry:
                tests = as_list(section, "tests", entry["tests"])
                names = [test_name(f"{path}/{t}") for t in tests]
            else:
                names = [test_name(path)]
            lines.append(f"{ORDER_MARK}{section} {' '.join(names)}")
        return lines

    def runfile(self) -> str:
        lines = ["[DEFAULT]"]
        lines += [f"{k} = {v}" if v else f"{k} =" for k, v in (self.default or {}).items()]
        lines.append("")
        for section in self.order:
            lines.append(f"[{section}]")
            for key, value in self.sections[section].items():
                lines.append(f"{key} = {value}" if value else f"{key} =")
            lines.append("")
        return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="select_tests.py", description=__doc__)
    parser.add_argument("--suite-dir", type=Path, required=True, help="the suite (STF_SUITE)")
    parser.add_argument("--out", type=Path, required=True, help="the runfile to write")
    parser.add_argument("--report", type=Path, required=True, help="the JSON report to write")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tests", type=Path, help="file with one test per line")
    which.add_argument("--failed-in", type=Path, help="a console log: its FAIL/KILLED tests")
    parser.add_argument("--groups", help="comma-separated groups (tags or directories)")
    parser.add_argument("--absent", type=Path, help="file of names known to be absent")
    parser.add_argument("runfiles", type=Path, nargs="+")
    args = parser.parse_args(argv)
    tests = None
    if args.tests is not None:
        lines = args.tests.read_text(encoding="utf-8").splitlines()
        tests = [test_name(line.strip()) for line in lines if line.strip()]
    elif args.failed_in is not None:
        tests = failed_in(args.failed_in)
    groups = (
        [g.strip().strip("/") for g in args.groups.split(",") if g.strip()] if args.groups else None
    )
    selector = Selector(args.suite_dir, tests, groups)
    for runfile in args.runfiles:
        selector.read(runfile)
    if tests is not None:
        selector.unlisted()
    args.out.write_text(selector.runfile(), encoding="utf-8")
    known = []
    if args.absent is not None:
        known = [n.strip() for n in args.absent.read_text(encoding="utf-8").splitlines()]
    absent = list(dict.fromkeys([*selector.absent, *(n for n in known if n)]))
    report = {
        "runfiles": [str(r) for r in args.runfiles],
        "selected": selector.selected,
        "absent": absent,
        "sections": len(selector.order),
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    # The run order, for the host: after a guest crash it names the test that was running
    # (the one after the last result line) and resumes after it (testrun/crash.py).
    for line in selector.order_lines():
        print(line)
    print(
        f"select_tests: {len(selector.selected)} test(s) in {len(selector.order)} section(s), "
        f"{len(absent)} absent in this suite"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
