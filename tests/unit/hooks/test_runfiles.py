"""The curated runfiles: valid for test-runner, and made of tests upstream lists.

quick.run and linux-fault.run serve suites from 2.2.2 (Ubuntu 24.04) to 2.4.x (Fedora 44).
quick.run names only tests that exist -- and are listed by upstream common.run/linux.run --
in every tag from zfs-2.2.2 to zfs-2.4.4.  linux-fault.run is a rule's union over the
versions the goldens carry (make_linux_fault_run.py): each of its tests is listed by at
least one of them, and a suite that lacks one reports it ABSENT.  data/zts_inventory.json
records the sections the runfiles use, read from the real tags (make_zts_inventory.py
regenerates it).
"""

from __future__ import annotations

import ast
import configparser
import json
from pathlib import Path
from typing import Any

import pytest

from imagefactory.paths import hooks_dir
from imagefactory.testrun.absent import filter_runfile, runfile_tests
from tests.unit.hooks.make_linux_fault_run import (
    CARRIED,
    FAULT_DIRS,
    in_fault_dir,
    load_sources,
    render,
    select,
    selected_tests,
)
from tests.unit.hooks.make_zts_inventory import INVENTORY, TAGS

RUNFILES = {p.stem: p for p in sorted((hooks_dir() / "payload" / "runfiles").glob("*.run"))}
INV: dict[str, Any] = json.loads(INVENTORY.read_text())


def parse(path: Path) -> configparser.RawConfigParser:
    # As test-runner reads it (RawConfigParser, DEFAULT applies to every section).
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser


def test_the_two_curated_runfiles_exist() -> None:
    assert sorted(RUNFILES) == ["linux-fault", "quick"]


def test_inventory_covers_every_supported_release() -> None:
    assert sorted(INV["tags"]) == sorted(TAGS)
    assert {"zfs-2.2.2", "zfs-2.2.9", "zfs-2.3.2", "zfs-2.3.9", "zfs-2.4.1"} <= set(TAGS)


def listed_in(section: str, test: str) -> set[str]:
    """The tags whose upstream runfiles list the test (and ship its script)."""
    known = INV["sections"].get(section)
    assert known is not None, (
        f"[{section}] is not in the inventory: rerun tests/unit/hooks/make_zts_inventory.py"
    )
    tags = known["tests"].get(test, [])
    return set(TAGS) if tags == "all" else set(tags)


def test_quick_tests_exist_in_every_release() -> None:
    parser = parse(RUNFILES["quick"])
    missing = [
        f"{section}/{test}: {sorted(listed_in(section, test)) or 'in no release'}"
        for section in parser.sections()
        for test in ast.literal_eval(parser.get(section, "tests"))
        if listed_in(section, test) != set(TAGS)
    ]
    assert not missing, "\n".join(missing)


def test_linux_fault_tests_are_each_listed_by_a_carried_release() -> None:
    parser = parse(RUNFILES["linux-fault"])
    unknown = [
        f"{section}/{test}"
        for section in parser.sections()
        for test in ast.literal_eval(parser.get(section, "tests"))
        if not listed_in(section, test) & set(CARRIED)
    ]
    assert not unknown, "\n".join(unknown)


def _covers_carried(tags: str | list[str]) -> bool:
    return tags == "all" or bool(set(tags) & set(CARRIED))


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_sections_keep_upstream_setup_cleanup_and_tags(name: str) -> None:
    parser = parse(RUNFILES[name])
    for section in parser.sections():
        ours = dict(parser.items(section))
        for variant in INV["sections"][section]["attributes"]:
            if name == "linux-fault" and not _covers_carried(variant["tags"]):
                continue  # an attribute of a release no golden carries
            upstream = {"pre": "setup", "post": "cleanup", "timeout": "600"}
            upstream.update(variant["values"])
            assert ast.literal_eval(ours["tags"]) == ast.literal_eval(upstream["tags"]), section
            assert ours["pre"] == upstream["pre"], section
            assert ours["post"] == upstream["post"], section
            # Never shorter than upstream's limit in any release.
            assert int(ours["timeout"]) >= int(upstream["timeout"]), section


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_runfile_defaults_work_for_2_2_to_2_4(name: str) -> None:
    parser = parse(RUNFILES[name])
    defaults = parser.defaults()
    # 2.2.x test-runner appends the timestamp twice without a DEFAULT outputdir.
    assert defaults["outputdir"] == "/var/tmp/test_results"
    assert defaults["failsafe"] == "callbacks/zfs_failsafe"
    assert defaults["user"] == "root"
    # zfs-tests.sh -T N/M greps one-line `tags = ` entries.
    for line in RUNFILES[name].read_text().splitlines():
        if line.startswith("tags"):
            assert line.startswith("tags = [") and line.endswith("]")


def test_quick_is_about_fifty_tests_across_the_requested_groups() -> None:
    tests = runfile_tests(RUNFILES["quick"].read_text())
    assert 45 <= len(tests) <= 60
    groups = {t.rsplit("/", 1)[0] for t in tests}
    for wanted in [
        "arc",
        "atime",
        "casenorm",
        "l2arc",
        "mount",
        "raidz",
        "removal",
        "rsend",
        "scrub_mirror",
        "userquota",
        "cli_root/zpool_import",
        "cli_root/zfs_load-key",
        "cli_root/zfs_change-key",
    ]:
        assert wanted in groups, wanted


def test_linux_fault_is_generated_from_the_recorded_sources() -> None:
    sources = load_sources()
    assert RUNFILES["linux-fault"].read_text() == render(select(sources), sources), (
        "linux-fault.run is stale: python -m tests.unit.hooks.make_linux_fault_run"
    )


def test_linux_fault_is_the_union_of_the_fault_groups_and_the_zinject_tests() -> None:
    sources = load_sources()
    tests = runfile_tests(RUNFILES["linux-fault"].read_text())
    assert len(tests) == len(set(tests)) == 130  # issue 17 guessed "about 200"; see README
    wanted: set[str] = set()
    for tag in CARRIED:
        version = sources[tag]
        assert len(version["injecting"]) >= 40, tag  # the recorded data is not a stub
        for section, entry in version["sections"].items():
            path = section.split(":", 1)[0].removeprefix("tests/functional/")
            names = {f"{path}/{test}" for test in entry["tests"]}
            if in_fault_dir(section):
                wanted |= names
            wanted |= names & {n.removeprefix("tests/functional/") for n in version["injecting"]}
    assert set(tests) == wanted
    groups = {t.split("/")[0] for t in tests} | {t.split("/")[1] for t in tests if "/" in t}
    assert {"fault", "deadman", "mmp", "failmode", "redundancy", "io"} <= groups
    assert "suspend_resume" in FAULT_DIRS  # in the rule, though no carried version has it yet
    # Fault injection outside those groups, found by its zinject calls:
    for test in (
        "cli_root/zpool_scrub/zpool_scrub_print_repairing",
        "cli_root/zfs_receive/zfs_receive_corrective",
        "cli_root/zpool_wait/scan/zpool_wait_resilver",  # through zpool_wait.kshlib
        "events/zed_cksum_reported",
    ):
        assert test in tests, test
    # A comment that mentions zinject is not a call.
    assert "cli_root/zpool_import/import_rewind_device_replaced" not in tests


def test_the_selection_takes_every_carried_version_and_the_longest_timeout() -> None:
    old, new = "zfs-2.2.2", "zfs-2.4.1"
    sources: dict[str, Any] = {
        tag: {"commit": "0" * 40, "sections": {}, "injecting": []} for tag in CARRIED
    }
    sources[new]["sections"]["tests/functional/fault:Linux"] = {
        "attributes": {"tags": "['functional', 'fault']", "timeout": "600"},
        "tests": ["auto_spare_001_pos", "fault_limits"],
    }
    sources[old]["sections"]["tests/functional/fault:Linux"] = {
        "attributes": {"tags": "['functional', 'fault']", "timeout": "1200"},
        "tests": ["auto_spare_001_pos", "gone_in_2_4"],
    }
    sources[old]["sections"]["tests/functional/acl/posix"] = {
        "attributes": {"tags": "['functional', 'acl']"},
        "tests": ["posix_001_pos", "calls_zinject"],
    }
    sources[old]["injecting"] = ["tests/functional/acl/posix/calls_zinject"]
    chosen = select(sources)
    assert selected_tests(chosen) == [
        "acl/posix/calls_zinject",
        "fault/auto_spare_001_pos",
        "fault/fault_limits",
        "fault/gone_in_2_4",
    ]
    assert chosen["tests/functional/fault:Linux"]["attributes"]["timeout"] == "1200"


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_the_testrun_filter_reads_our_runfiles(name: str) -> None:
    text = RUNFILES[name].read_text()
    everything = filter_runfile(text, present=None)
    assert everything.absent == []
    # Reduced to a suite that lacks one test, that test is reported absent, not lost.
    first = everything.kept[0]
    reduced = filter_runfile(text, present=set(everything.kept) - {first})
    assert reduced.absent == [first]
