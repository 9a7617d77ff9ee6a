"""The guest's test selector (hooks/testrun/select_tests.py) on a suite laid out here.

It runs in the guest with the guest's python3, so it is run here as a script, never
imported.  Its curated-runfile filtering must agree with the host's absent.filter_runfile:
both decide what "absent in this version" means.
"""

from __future__ import annotations

import ast
import configparser
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.paths import hooks_dir
from imagefactory.testrun.absent import filter_runfile, runfile_tests

SELECTOR = hooks_dir() / "testrun" / "select_tests.py"
CURATED = hooks_dir() / "payload" / "runfiles"


def install(suite: Path, names: list[str]) -> None:
    for name in names:
        path = suite / "tests" / "functional" / f"{name}.ksh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/ksh\n")
        path.chmod(0o755)


def select(
    tmp_path: Path, suite: Path, runfiles: list[Path], *args: str
) -> tuple[dict[str, list[str]], dict[str, object]]:
    out, report = tmp_path / "selection.run", tmp_path / "selection.json"
    proc = subprocess.run(
        [sys.executable, str(SELECTOR), "--suite-dir", str(suite), "--out", str(out),
         "--report", str(report), *args, *map(str, runfiles)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return sections(out.read_text()), json.loads(report.read_text())


def sections(text: str) -> dict[str, list[str]]:
    parser = configparser.RawConfigParser(default_section="\x00")
    parser.read_string(text)
    return {
        s: ast.literal_eval(parser.get(s, "tests")) if parser.has_option(s, "tests") else []
        for s in parser.sections()
        if s != "DEFAULT"
    }


@pytest.mark.parametrize("runfile", ["quick.run", "linux-fault.run"])
def test_curated_filtering_agrees_with_the_host(tmp_path: Path, runfile: str) -> None:
    text = (CURATED / runfile).read_text()
    names = runfile_tests(text)
    present = [n for i, n in enumerate(names) if i % 3]  # a third is "not in this version"
    suite = tmp_path / "suite"
    install(suite, present)

    got, report = select(tmp_path, suite, [CURATED / runfile])

    host = filter_runfile(text, present=set(present))
    assert report["absent"] == host.absent
    assert report["selected"] == host.kept
    assert got == sections(host.text)


def test_the_output_keeps_defaults_and_one_line_tags(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, runfile_tests((CURATED / "quick.run").read_text()))

    select(tmp_path, suite, [CURATED / "quick.run"])

    text = (tmp_path / "selection.run").read_text()
    assert text.startswith("[DEFAULT]\n")
    assert "outputdir = /var/tmp/test_results" in text  # 2.2.x's test-runner needs it
    assert all(line.endswith("]") for line in text.splitlines() if line.startswith("tags = "))


def test_a_test_by_bare_name_is_found_in_the_runfiles(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, ["atime/atime_001_pos", "atime/atime_002_neg"])
    runfile = tmp_path / "common.run"
    runfile.write_text(
        "[DEFAULT]\npre = setup\ntags = ['functional']\n\n"
        "[tests/functional/atime]\ntests = ['atime_001_pos', 'atime_002_neg']\n"
        "tags = ['functional', 'atime']\ntimeout = 1200\n"
    )
    wanted = tmp_path / "tests.txt"
    wanted.write_text("atime_002_neg\n")

    got, report = select(tmp_path, suite, [runfile], "--tests", str(wanted))

    assert got == {"tests/functional/atime": ["atime_002_neg"]}
    assert "timeout = 1200" in (tmp_path / "selection.run").read_text()
    assert report["selected"] == ["atime/atime_002_neg"]


def test_a_test_no_runfile_lists_gets_its_own_section_with_setup(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, ["special/special_pos", "special/setup"])
    runfile = tmp_path / "common.run"
    runfile.write_text("[DEFAULT]\npre = setup\n")
    wanted = tmp_path / "tests.txt"
    wanted.write_text("special/special_pos\nnowhere/missing_test\n")

    got, report = select(tmp_path, suite, [runfile], "--tests", str(wanted))

    assert got == {"tests/functional/special": ["special_pos"]}
    text = (tmp_path / "selection.run").read_text()
    assert "pre = setup" in text and "post =\n" in text  # no cleanup.ksh there
    assert report["absent"] == ["nowhere/missing_test"]


def test_groups_match_tags_and_directories(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, ["cli_root/zpool_create/zc_001", "cli_root/zfs_snapshot/zs_001", "arc/a_001"])
    runfile = tmp_path / "common.run"
    runfile.write_text(
        "[DEFAULT]\ntags = ['functional']\n\n"
        "[tests/functional/cli_root/zpool_create]\ntests = ['zc_001']\n"
        "tags = ['functional', 'cli_root', 'zpool_create']\n\n"
        "[tests/functional/cli_root/zfs_snapshot]\ntests = ['zs_001']\n"
        "tags = ['functional', 'cli_root', 'zfs_snapshot']\n\n"
        "[tests/functional/arc]\ntests = ['a_001']\ntags = ['functional', 'arc']\n"
    )

    by_tag, _ = select(tmp_path, suite, [runfile], "--groups", "zpool_create,arc")
    by_dir, _ = select(tmp_path, suite, [runfile], "--groups", "cli_root/zfs_snapshot")

    assert list(by_tag) == ["tests/functional/cli_root/zpool_create", "tests/functional/arc"]
    assert list(by_dir) == ["tests/functional/cli_root/zfs_snapshot"]


def test_unreadable_runfile_is_an_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SELECTOR), "--suite-dir", str(tmp_path), "--out",
         str(tmp_path / "o"), "--report", str(tmp_path / "r"), str(tmp_path / "nope.run")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "cannot read" in proc.stderr
