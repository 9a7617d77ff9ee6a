"""Generate hooks/payload/runfiles/linux-fault.run: the fault-injection run, by its rule.

The rule (issue 17): the union, across the suite versions the goldens carry, of the tests
upstream's common.run/linux.run list in the fault, deadman, mmp, failmode, redundancy,
suspend_resume, zpool_events and io directories, and of every other listed test whose
script calls zinject (directly, or through its directory's helper library).  A test a
distro's suite does not have is reported ABSENT at run time (imagefactory/testrun/absent.py),
never dropped silently, so one runfile serves 2.2.2 to 2.4.x.

Two steps, so the unit tests need neither network nor mirror:

    python -m tests.unit.hooks.make_linux_fault_run --repo /path/to/openzfs/zfs.git
        reads the tags into data/linux_fault_sources.json.gz (what each version lists, and
        which of those tests inject faults), then writes the runfile;
    python -m tests.unit.hooks.make_linux_fault_run
        writes the runfile from the committed data (the test checks it is up to date).

(`fetch github:openzfs/zfs` gives a mirror with the tags.)
"""

from __future__ import annotations

import argparse
import ast
import configparser
import gzip
import json
import re
import textwrap
from pathlib import Path
from typing import Any

from imagefactory.run import run

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "data" / "linux_fault_sources.json.gz"
RUNFILE = HERE.parents[2] / "hooks" / "payload" / "runfiles" / "linux-fault.run"
#: The suite versions the goldens carry: Ubuntu 24.04, EL9 (CentOS, Rocky), Debian 13,
#: Fedora 44 (distros/*.yaml).  Newest first: a section's attributes come from the newest.
CARRIED = ("zfs-2.4.1", "zfs-2.3.9", "zfs-2.2.9", "zfs-2.2.2")
FAULT_DIRS = frozenset(
    {"fault", "deadman", "mmp", "failmode", "redundancy", "suspend_resume", "zpool_events", "io"}
)
UPSTREAM_RUNFILES = ("common.run", "linux.run")
_NO_DEFAULT = "\x00none"
_ZINJECT = re.compile(r"\bzinject\b")
_FUNCTION = re.compile(r"^\s*function\s+([A-Za-z_][A-Za-z0-9_]*)|^\s*([A-Za-z_]\w*)\s*\(\)")
# Keys written in this order (upstream's), the rest after them sorted.
_KEY_ORDER = ("tests", "pre", "pre_user", "post", "post_user", "user", "timeout", "tags")

DEFAULTS = """[DEFAULT]
pre = setup
quiet = False
pre_user = root
user = root
timeout = 600
post_user = root
post = cleanup
failsafe_user = root
failsafe = callbacks/zfs_failsafe
outputdir = /var/tmp/test_results
tags = ['functional']
"""


# --- step 1: what each carried version lists, from a mirror --------------------------------


def _git(repo: Path, *args: str) -> str:
    return run(["git", "-C", repo, *args]).stdout


def _parser(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(default_section=_NO_DEFAULT)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _code(text: str) -> str:
    """A shell script without its comment lines (a comment naming zinject injects nothing)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _injecting_functions(library: str) -> set[str]:
    """The functions of a helper library whose body runs zinject (other than to clear)."""
    found: set[str] = set()
    current = None
    for line in _code(library).splitlines():
        match = _FUNCTION.match(line)
        if match:
            current = match.group(1) or match.group(2)
        elif current and _ZINJECT.search(line) and "zinject -c" not in line:
            found.add(current)
    return found


def version_sources(repo: Path, tag: str) -> dict[str, Any]:
    """One tag: every section of common.run/linux.run with its attributes and tests, and the
    listed tests that inject faults (`dir/test` names)."""
    files = set(_git(repo, "ls-tree", "-r", "--name-only", tag, "tests/zfs-tests/tests").split())
    sections: dict[str, dict[str, Any]] = {}
    for runfile in UPSTREAM_RUNFILES:
        parser = _parser(_git(repo, "show", f"{tag}:tests/runfiles/{runfile}"))
        for section in parser.sections():
            items = dict(parser.items(section, raw=True))
            tests = ast.literal_eval(items.pop("tests", "[]"))
            sections[section] = {"attributes": items, "tests": tests}
    libraries: dict[str, set[str]] = {}
    for path in sorted(files):
        if path.endswith((".kshlib", ".shlib")):
            functions = _injecting_functions(_git(repo, "show", f"{tag}:{path}"))
            if functions:
                libraries[path.rsplit("/", 1)[0]] = functions
    injecting = []
    for section, entry in sections.items():
        directory = "tests/zfs-tests/" + section.split(":", 1)[0]
        # A test sources helper libraries of its own directory or of a parent group's
        # (zpool_wait/scan/* use ../zpool_wait.kshlib's add_io_delay).
        helpers = set().union(
            *(fs for where, fs in libraries.items() if f"{directory}/".startswith(f"{where}/"))
        )
        for test in entry["tests"]:
            script = f"{directory}/{test}.ksh"
            if script not in files:
                continue
            code = _code(_git(repo, "show", f"{tag}:{script}"))
            if _ZINJECT.search(code) or any(re.search(rf"\b{f}\b", code) for f in helpers):
                injecting.append(f"{section.split(':', 1)[0]}/{test}")
    return {
        "commit": _git(repo, "rev-list", "-n", "1", tag).strip(),
        "sections": sections,
        "injecting": sorted(set(injecting)),
    }


def read_sources(repo: Path) -> dict[str, Any]:
    return {tag: version_sources(repo, tag) for tag in CARRIED}


def load_sources(path: Path = SOURCES) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


# --- step 2: the rule, and the runfile -----------------------------------------------------


def in_fault_dir(section: str) -> bool:
    path = section.split(":", 1)[0].removeprefix("tests/functional/")
    return any(part in FAULT_DIRS for part in path.split("/"))


def select(sources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """section → {attributes, tests}: the union the rule names, one section per upstream
    section name, each test once (in the newest version's section and order first)."""
    chosen: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for tag in CARRIED:
        version = sources[tag]
        injecting = set(version["injecting"])
        for section, entry in version["sections"].items():
            path = section.split(":", 1)[0]
            for test in entry["tests"]:
                name = f"{path}/{test}"
                if name in seen or not (in_fault_dir(section) or name in injecting):
                    continue
                seen.add(name)
                target = chosen.setdefault(
                    section, {"attributes": dict(entry["attributes"]), "tests": []}
                )
                target["tests"].append(test)
            if section in chosen:
                _widen_timeout(chosen[section]["attributes"], entry["attributes"])
    return dict(sorted(chosen.items()))


def _widen_timeout(ours: dict[str, str], theirs: dict[str, str]) -> None:
    """Never shorter than any carried version's limit for the section."""
    if "timeout" in theirs and int(theirs["timeout"]) > int(ours.get("timeout", "600")):
        ours["timeout"] = theirs["timeout"]


def selected_tests(selection: dict[str, dict[str, Any]]) -> list[str]:
    return [
        f"{section.split(':', 1)[0].removeprefix('tests/functional/')}/{test}"
        for section, entry in selection.items()
        for test in entry["tests"]
    ]


def render(selection: dict[str, dict[str, Any]], sources: dict[str, Any]) -> str:
    count = len(selected_tests(selection))
    versions = ", ".join(tag.removeprefix("zfs-") for tag in reversed(CARRIED))
    commits = ", ".join(f"{tag} {sources[tag]['commit'][:12]}" for tag in reversed(CARRIED))
    header = (
        "linux-fault.run -- imagefactory's fault-injection run, generated: do not edit, run "
        "python -m tests.unit.hooks.make_linux_fault_run.  The union, across the suite "
        f"versions the goldens carry ({versions}), of the tests upstream's common.run and "
        "linux.run list in the fault, deadman, mmp, failmode, redundancy, suspend_resume, "
        "zpool_events and io directories, and of every other listed test that calls zinject "
        f"(directly or through its group's helper library): {count} tests.  A test a "
        "distro's suite lacks is reported ABSENT with its suite version, never dropped.  "
        "Sections and attributes are upstream's (the newest carried version's, the longest "
        f"timeout).  Upstream commits: {commits}."
    )
    lines = [
        *(f"# {line}" for line in textwrap.wrap(header, width=92)),
        "# `outputdir` must stay (2.2.x test-runner); keep `tags = [...]` on one line (-T N/M).",
        "",
        DEFAULTS,
    ]
    for section, entry in selection.items():
        attributes = {"tests": repr(entry["tests"]), **entry["attributes"]}
        lines.append(f"[{section}]")
        ordered = [k for k in _KEY_ORDER if k in attributes]
        ordered += sorted(k for k in attributes if k not in _KEY_ORDER)
        for key in ordered:
            value = attributes[key]
            lines.append(f"{key} = {value}" if value else f"{key} =")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, help="git directory of an openzfs/zfs mirror")
    args = parser.parse_args()
    if args.repo is not None:
        sources = read_sources(args.repo)
        SOURCES.parent.mkdir(parents=True, exist_ok=True)
        with gzip.GzipFile(SOURCES, "wb", mtime=0) as handle:
            handle.write((json.dumps(sources, indent=0, sort_keys=True) + "\n").encode())
        print(f"wrote {SOURCES}")
    sources = load_sources()
    selection = select(sources)
    RUNFILE.write_text(render(selection, sources))
    print(f"wrote {RUNFILE} ({len(selected_tests(selection))} tests)")


if __name__ == "__main__":
    main()
