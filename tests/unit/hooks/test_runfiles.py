"""The curated runfiles: valid for test-runner, and only tests every supported release has.

quick.run and linux-fault.run serve suites from 2.2.2 (Ubuntu 24.04) to 2.4.x (Fedora 44),
so each test they name must exist -- and be listed by upstream common.run/linux.run -- in
every tag from zfs-2.2.2 to zfs-2.4.4.  data/zts_inventory.json records that for the
sections the runfiles use, read from the real tags (make_zts_inventory.py regenerates it).
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


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_runfile_tests_exist_in_every_release(name: str) -> None:
    parser = parse(RUNFILES[name])
    missing = []
    for section in parser.sections():
        known = INV["sections"].get(section)
        assert known is not None, (
            f"[{section}] is not in the inventory: rerun tests/unit/hooks/make_zts_inventory.py"
        )
        for test in ast.literal_eval(parser.get(section, "tests")):
            if known["tests"].get(test) != "all":
                missing.append(f"{section}/{test}: {known['tests'].get(test, 'in no release')}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_sections_keep_upstream_setup_cleanup_and_tags(name: str) -> None:
    parser = parse(RUNFILES[name])
    for section in parser.sections():
        ours = dict(parser.items(section))
        for variant in INV["sections"][section]["attributes"]:
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


def test_linux_fault_holds_the_fault_group_and_zinject_tests() -> None:
    tests = runfile_tests(RUNFILES["linux-fault"].read_text())
    assert "fault/auto_spare_001_pos" in tests
    assert "fault/decrypt_fault" in tests
    assert "cli_root/zpool_scrub/zpool_scrub_print_repairing" in tests
    assert len(tests) == len(set(tests))


@pytest.mark.parametrize("name", sorted(RUNFILES))
def test_the_testrun_filter_reads_our_runfiles(name: str) -> None:
    text = RUNFILES[name].read_text()
    everything = filter_runfile(text, present=None)
    assert everything.absent == []
    # Reduced to a suite that lacks one test, that test is reported absent, not lost.
    first = everything.kept[0]
    reduced = filter_runfile(text, present=set(everything.kept) - {first})
    assert reduced.absent == [first]
