"""Regenerate data/zts_inventory.json from a git mirror of openzfs/zfs.

The curated runfiles (hooks/payload/runfiles/) may only name tests that exist in every
OpenZFS version a golden can carry.  The unit tests check them against this inventory,
which records, for each section the runfiles use, the section's attributes and which tags
list each test in upstream common.run/linux.run *and* ship its script.  It is data read
from the real tags, so the tests need no network and no mirror.

    python -m tests.unit.hooks.make_zts_inventory /path/to/openzfs/zfs.git

(the mirror needs the tags; `fetch github:openzfs/zfs` gives one).
"""

from __future__ import annotations

import argparse
import ast
import configparser
import json
from pathlib import Path

from imagefactory.run import run

HERE = Path(__file__).resolve().parent
INVENTORY = HERE / "data" / "zts_inventory.json"
RUNFILES_DIR = HERE.parents[2] / "hooks" / "payload" / "runfiles"
# Every release a golden may carry: 2.2.2 (Ubuntu 24.04) to the newest 2.4.
TAGS = (
    [f"zfs-2.2.{n}" for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]
    + [f"zfs-2.3.{n}" for n in range(10)]
    + [f"zfs-2.4.{n}" for n in range(5)]
)
UPSTREAM_RUNFILES = ("common.run", "linux.run")
_NO_DEFAULT = "\x00none"


def _git(repo: Path, *args: str) -> str:
    return run(["git", "-C", repo, *args]).stdout


def _parser(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(default_section=_NO_DEFAULT)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def wanted_sections() -> set[str]:
    """The sections our runfiles use."""
    sections: set[str] = set()
    for path in sorted(RUNFILES_DIR.glob("*.run")):
        sections.update(s for s in _parser(path.read_text()).sections() if s != "DEFAULT")
    return sections


def inventory(repo: Path, sections: set[str]) -> dict[str, object]:
    result: dict[str, dict[str, object]] = {}
    commits: dict[str, str] = {}
    for tag in TAGS:
        commits[tag] = _git(repo, "rev-list", "-n", "1", tag).strip()
        files = set(_git(repo, "ls-tree", "-r", "--name-only", tag, "tests/zfs-tests").split())
        for runfile in UPSTREAM_RUNFILES:
            parser = _parser(_git(repo, "show", f"{tag}:tests/runfiles/{runfile}"))
            for section in parser.sections():
                if section not in sections:
                    continue
                entry = result.setdefault(section, {"attributes": {}, "tests": {}})
                items = dict(parser.items(section, raw=True))
                names = ast.literal_eval(items.pop("tests", "[]"))
                attributes = entry["attributes"]
                assert isinstance(attributes, dict)
                attributes[tag] = items
                tests = entry["tests"]
                assert isinstance(tests, dict)
                base = "tests/zfs-tests/" + section.split(":", 1)[0]
                for name in names:
                    if any(f"{base}/{name}{ext}" in files for ext in ("", ".ksh", ".sh")):
                        tests.setdefault(name, []).append(tag)
    return {
        "tags": commits,
        "runfiles": list(UPSTREAM_RUNFILES),
        "sections": {name: _compact(entry) for name, entry in sorted(result.items())},
    }


def _compact(entry: dict[str, object]) -> dict[str, object]:
    """ "all" for what every tag has; otherwise the tags that have it."""
    tests = entry["tests"]
    attributes = entry["attributes"]
    assert isinstance(tests, dict) and isinstance(attributes, dict)
    every = list(TAGS)
    variants: dict[str, list[str]] = {}
    for tag, items in attributes.items():
        variants.setdefault(json.dumps(items, sort_keys=True), []).append(tag)
    return {
        "tests": {name: "all" if tags == every else tags for name, tags in sorted(tests.items())},
        "attributes": [
            {"tags": "all" if tags == every else tags, "values": json.loads(values)}
            for values, tags in variants.items()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="git directory of an openzfs/zfs mirror")
    args = parser.parse_args()
    data = inventory(args.repo, wanted_sections())
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    INVENTORY.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {INVENTORY}")


if __name__ == "__main__":
    main()
