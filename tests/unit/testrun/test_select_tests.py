"""The guest's test selector (hooks/testrun/select_tests.py) on a suite laid out here.

It runs in the guest with the guest's python3, so it is run here as a script, never
imported.  Its curated-runfile filtering must agree with the host's absent.filter_runfile:
both decide what "absent in this version" means.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.paths import hooks_dir
from imagefactory.testrun.absent import filter_runfile, runfile_tests
from tests.fixtures.capped import run_capped

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


def _selector_module() -> ModuleType:
    """select_tests.py loaded as a module, for the property tests of its console reading."""
    spec = importlib.util.spec_from_file_location("select_tests", SELECTOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SELECT = _selector_module()
RESULT_LINE = (
    "Test{ident}: /usr/share/zfs/zfs-tests/tests/functional/{name} (run as zfs) [00:03] [{r}]"
)


def test_a_retry_runs_what_failed_or_was_killed_in_its_section(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, ["atime/atime_001_pos", "atime/atime_002_neg", "atime/setup",
                    "rsend/rsend_001_pos", "rsend/send-c_verify_ratio"])  # fmt: skip
    runfile = tmp_path / "common.run"
    runfile.write_text(
        "[DEFAULT]\npre = setup\npost = cleanup\ntags = ['functional']\n\n"
        "[tests/functional/atime]\ntests = ['atime_001_pos', 'atime_002_neg']\n"
        "tags = ['functional', 'atime']\n\n"
        "[tests/functional/rsend]\ntests = ['rsend_001_pos', 'send-c_verify_ratio']\n"
        "tags = ['functional', 'rsend']\ntimeout = 1800\n"
    )
    console = tmp_path / "attempt1.log"
    console.write_text(
        "\n".join(
            [
                RESULT_LINE.format(ident="", name="atime/setup", r="FAIL"),
                "\x1b[1;31m" + RESULT_LINE.format(ident="", name="atime/atime_002_neg", r="FAIL"),
                RESULT_LINE.format(ident="", name="atime/atime_001_pos", r="PASS"),
                "\x1b]0;title\x07"
                + RESULT_LINE.format(ident="", name="rsend/send-c_verify_ratio", r="KILLED")
                + " (RERAN)\x1b[0m",
                RESULT_LINE.format(ident="", name="rsend/rsend_001_pos", r="FAIL"),
                RESULT_LINE.format(ident="", name="rsend/rsend_001_pos", r="PASS"),
                "",
                "Results Summary",
                "FAIL\t   2",
            ]
        )
    )

    got, report = select(tmp_path, suite, [runfile], "--failed-in", str(console))

    assert got == {
        "tests/functional/atime": ["atime_002_neg"],
        "tests/functional/rsend": ["send-c_verify_ratio"],
    }
    text = (tmp_path / "selection.run").read_text()
    assert "pre = setup" in text and "timeout = 1800" in text
    assert report["selected"] == ["atime/atime_002_neg", "rsend/send-c_verify_ratio"]
    assert report["absent"] == ["atime/setup"]  # a setup is never run as a test


def test_names_the_host_found_absent_are_reported_absent(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    install(suite, ["atime/atime_001_pos"])
    runfile = tmp_path / "common.run"
    runfile.write_text("[tests/functional/atime]\ntests = ['atime_001_pos']\n")
    (tmp_path / "tests.txt").write_text("atime/atime_001_pos\n")
    (tmp_path / "absent.txt").write_text("raidz/raidz_expand_001_pos\n")

    _, report = select(tmp_path, suite, [runfile], "--tests", str(tmp_path / "tests.txt"),
                       "--absent", str(tmp_path / "absent.txt"))  # fmt: skip

    assert report["selected"] == ["atime/atime_001_pos"]
    assert report["absent"] == ["raidz/raidz_expand_001_pos"]


def _failed_in(data: bytes, path: Path) -> list[str]:
    path.write_bytes(data)
    result: list[str] = SELECT.failed_in(path)
    return result


_ESCAPES = st.sampled_from(
    ["\x1b[31m", "\x1b[38:2::200:0:0m", "\x1b]8;;http://x\x1b\\", "\x1b]0;t\x07", "\x1b7",
     "\x1b8", "\x1b(B", "\x1b[0m", "\x9b1m", "\x1b[?25l"]
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_any_console_bytes_are_read_without_a_traceback(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_capped(_failed_in, data, tmp_path_factory.mktemp("console") / "console.log")


def _wrapped_failure_is_found(prefix: str, suffix: str, result: str, path: Path) -> None:
    line = RESULT_LINE.format(ident=" (Linux)", name="atime/atime_003_pos", r=result)
    assert _failed_in(f"noise\n{prefix}{line}{suffix}\nmore\n".encode(), path) == [
        "atime/atime_003_pos"
    ]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.lists(_ESCAPES, max_size=3).map("".join),
    suffix=st.lists(_ESCAPES, max_size=3).map("".join),
    result=st.sampled_from(["FAIL", "KILLED"]),
)
def test_a_failure_wrapped_in_any_escapes_is_retried(
    prefix: str, suffix: str, result: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("console") / "console.log"
    run_capped(_wrapped_failure_is_found, prefix, suffix, result, path)


def test_a_megabyte_line_is_read_in_one_pass(tmp_path: Path) -> None:
    """Linear string work: a 1 MiB line of brackets finishes well inside the cap."""
    line = "Test: /x/" + "[FAIL] " * 150000 + "(run as zfs) [00:01] [KILLED]"
    run_capped(_failed_in, line.encode(), tmp_path / "console.log", seconds=60)
