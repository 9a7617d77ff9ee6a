#!/usr/bin/env python3
"""Write the installed test suite's inventory: every test, where the runfiles list it, tags.

Runs in the guest while a ztest golden is built (80-golden-facts.sh; stdlib only: python3 is
there because the suite's test-runner.py needs it).  Why: `klab test --run NAME` and
`--group G` must be resolved on the host, against the suite this golden really carries,
before any clone boots -- a mistyped name is then a usage error in a second, not an hour of
booting that runs nothing.  The host keeps the file next to the golden (content-addressed,
its digest in the golden's provenance) and reads it with imagefactory/testrun/inventory.py.

    suite_inventory.py --suite-dir DIR --runfile-dir DIR --suite-version V --out FILE

Format (JSON, keys sorted so the same suite always gives the same bytes):
    {"format": 1, "suite_version": V, "suite_dir": DIR, "runfile_dir": DIR,
     "runfiles": ["common.run", ...], "unreadable": {"x.run": "why"},
     "tests": {"cli_root/zpool_create/zpool_create_001_pos":
                 {"on_disk": true,
                  "listed": {"common.run": {"section": "tests/functional/cli_root/zpool_create",
                                            "tags": ["functional", "cli_root"]}}}}}
A test is named by its path under tests/functional/ (or tests/perf/regression/), as the host
names it.  `listed` is empty for a test on disk that no runfile lists; `on_disk` is false
for a test a runfile lists but this suite does not ship.
Exit status: 0 when the inventory was written, 1 when it could not be.
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
import os
import sys
from pathlib import Path

FORMAT = 1
_NO_DEFAULT = "\x00none"  # read [DEFAULT] as an ordinary section, never merged into others
_PREFIXES = ("tests/functional/", "tests/perf/regression/")
_SUFFIXES = (".ksh", ".sh")


def test_name(path: str) -> str:
    """`tests/functional/atime/atime_001_pos.ksh` -> `atime/atime_001_pos`."""
    cut = max((path.rfind(p) + len(p) for p in _PREFIXES if p in path), default=-1)
    name = path[cut:] if cut >= 0 else path
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def names(section: str, key: str, raw: str) -> list[str]:
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        raise ValueError(f"[{section}] {key} is not a list: {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"[{section}] {key} is not a list of names: {raw!r}")
    return value


class Inventory:
    def __init__(self, suite: Path) -> None:
        self.suite = suite
        self.tests: dict[str, dict[str, object]] = {}
        self.helpers: set[str] = set()
        """`dir/name` of every pre/post script: part of a section, never a test itself."""

    def entry(self, name: str) -> dict[str, object]:
        return self.tests.setdefault(name, {"on_disk": False, "listed": {}})

    def read(self, runfile: Path) -> None:
        parser = configparser.RawConfigParser(default_section=_NO_DEFAULT)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string(runfile.read_text(encoding="utf-8"), source=str(runfile))
        default = dict(parser.items("DEFAULT", raw=True)) if parser.has_section("DEFAULT") else {}
        default_tags = names("DEFAULT", "tags", default["tags"]) if "tags" in default else []
        for section in parser.sections():
            if section == "DEFAULT":
                continue
            items = dict(parser.items(section, raw=True))
            path = section.split(":", 1)[0]
            if path.startswith("/"):
                continue  # longevity.run's /opt/zfs-tests/...: outside the suite, never run
            tags = names(section, "tags", items["tags"]) if "tags" in items else default_tags
            for key in ("pre", "post"):
                script = items.get(key, default.get(key, "")).strip()
                if script:
                    self.helpers.add(test_name(f"{path}/{script}"))
            # A section without `tests` is a single test: the section path itself.
            tests = [path] if "tests" not in items else [
                f"{path}/{t}" for t in names(section, "tests", items["tests"])
            ]  # fmt: skip
            for test in tests:
                listed = self.entry(test_name(test))["listed"]
                assert isinstance(listed, dict)
                listed.setdefault(runfile.name, {"section": section, "tags": tags})

    def scan(self) -> None:
        """Every test script the suite ships, listed or not."""
        for prefix in _PREFIXES:
            top = self.suite / prefix
            if not top.is_dir():
                continue
            for path in top.rglob("*"):
                if path.suffix not in _SUFFIXES or not path.is_file():
                    continue
                if not os.access(path, os.X_OK):
                    continue
                name = test_name(str(path.relative_to(self.suite)))
                base = name.rsplit("/", 1)[-1]
                if name in self.helpers or base in ("setup", "cleanup"):
                    continue
                self.entry(name)["on_disk"] = True
        # Listed tests whose script has no suffix (a few upstream ones are compiled).
        for name, entry in self.tests.items():
            if entry["on_disk"]:
                continue
            for prefix in _PREFIXES:
                candidate = self.suite / prefix / name
                if candidate.is_file() and os.access(candidate, os.X_OK):
                    entry["on_disk"] = True
                    break


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="suite_inventory.py", description=__doc__)
    parser.add_argument("--suite-dir", type=Path, required=True, help="the suite (STF_SUITE)")
    parser.add_argument("--runfile-dir", type=Path, required=True)
    parser.add_argument("--suite-version", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    inventory = Inventory(args.suite_dir)
    runfiles = sorted(args.runfile_dir.glob("*.run"))
    if not runfiles:
        print(f"suite_inventory: no runfile in {args.runfile_dir}", file=sys.stderr)
        return 1
    read: list[str] = []
    unreadable: dict[str, str] = {}
    for runfile in runfiles:
        try:
            inventory.read(runfile)
        except (OSError, UnicodeDecodeError, configparser.Error, ValueError) as exc:
            unreadable[runfile.name] = " ".join(str(exc).split())[:300]
            continue
        read.append(runfile.name)
    inventory.scan()
    document = {
        "format": FORMAT,
        "suite_version": args.suite_version,
        "suite_dir": str(args.suite_dir),
        "runfile_dir": str(args.runfile_dir),
        "runfiles": read,
        "unreadable": unreadable,
        "tests": inventory.tests,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n"
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(args.out)
    on_disk = sum(1 for t in inventory.tests.values() if t["on_disk"])
    unlisted = sum(1 for t in inventory.tests.values() if t["on_disk"] and not t["listed"])
    print(
        f"suite_inventory: {on_disk} test(s) in the suite ({unlisted} in no runfile), "
        f"{len(inventory.tests) - on_disk} listed but not shipped, {len(read)} runfile(s)"
        + (f", unreadable: {', '.join(sorted(unreadable))}" if unreadable else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
