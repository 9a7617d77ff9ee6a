"""A distro's status from its parsed log, absent tests, and the stage's exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import EXIT_INFRASTRUCTURE, EXIT_OK, EXIT_TEST_FAILURES, EXIT_USAGE
from imagefactory.testrun.absent import (
    absent_results,
    filter_runfile,
    present_tests,
    runfile_tests,
    with_absent,
)
from imagefactory.testrun.baseline import baselines_dir, load_baseline
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus, stage_exit_status
from imagefactory.testrun.results import TestResult, parse_file, parse_log

LOGS = Path(__file__).parent / "logs"

RUNFILE = """\
# curated quick suite (hand-written for this test)
[DEFAULT]
pre = setup
quiet = False
user = root
timeout = 600
post = cleanup
tags = ['functional']

[tests/functional/raidz]
tests = ['raidz_001_neg', 'raidz_002_pos',
    'raidz_expand_001_pos']
tags = ['functional',
    'raidz']

[tests/functional/atime:Linux]
tests = ['root_relatime_on']
tags = ['functional', 'atime']

[tests/functional/removal]
pre =
tests = ['removal_with_hole']
tags = ['functional', 'removal']

[tests/functional/cli_root/zfs_send_delegation]
tags = ['functional', 'cli_root']
"""


def test_statuses_follow_the_log() -> None:
    ok = DistroOutcome.from_parsed(
        "a",
        parse_log(
            "Test: /t/tests/functional/x/y (run as root) "
            "[00:01] [PASS]\n\nResults Summary\nPASS\t1\n"
        ),
    )
    assert ok.status is DistroStatus.PASSED
    sanity = parse_file(LOGS / "zts-2.2-sanity.log")
    failed = DistroOutcome.from_parsed(
        "b", sanity, zfs_version="2.2.2", baseline=load_baseline([baselines_dir()])
    )
    assert failed.status is DistroStatus.FAILED
    assert failed.unexpected == ["cli_root/zpool_create/zpool_create_002_pos"]
    assert failed.counts.failed == 2  # one of them expected (upstream's known list)
    assert failed.message == "1 unexpected result(s)"
    # Without a baseline every FAIL counts: raw results.
    raw = DistroOutcome.from_parsed("b", sanity, zfs_version="2.2.2")
    assert raw.unexpected == [
        "casenorm/mixed_formd_lookup",
        "cli_root/zpool_create/zpool_create_002_pos",
    ]
    assert raw.baseline_digest is None and failed.baseline_digest is not None
    aborted = DistroOutcome.from_parsed("c", parse_file(LOGS / "zts-aborted.log"))
    assert aborted.status is DistroStatus.INCOMPLETE
    nothing = DistroOutcome.from_parsed("d", parse_file(LOGS / "zts-zero-tests.log"))
    assert nothing.status is DistroStatus.NO_RESULTS
    assert "no test results were found" in (nothing.message or "")


def test_absent_tests_are_recorded_with_the_version_and_never_fail() -> None:
    parsed = parse_file(LOGS / "zts-2.2-sanity.log")
    absent = absent_results([*parsed.removed, "atime/atime_001_pos"], "2.2.2")

    outcome = DistroOutcome.from_parsed("ubuntu24", parsed, absent=absent, suite_version="2.2.2")

    by_name = {t.key: t for t in outcome.tests}
    expand = by_name["raidz/raidz_expand_001_pos"]
    assert (expand.result, expand.note) == ("ABSENT", "absent in zfs-tests 2.2.2")
    # A test that did run keeps its real result.
    assert by_name["atime/atime_001_pos"].result == "PASS"
    assert outcome.counts.absent == 2
    assert "raidz/raidz_expand_001_pos" not in outcome.unexpected


def test_a_selection_absent_in_this_version_is_not_a_failure() -> None:
    outcome = DistroOutcome.from_parsed(
        "ubuntu24",
        parse_log(""),
        absent=absent_results(["raidz/raidz_expand_001_pos"], "2.2.2"),
        suite_version="2.2.2",
    )

    assert outcome.status is DistroStatus.PASSED
    assert outcome.message == "every selected test is absent in zfs-tests 2.2.2"
    # ... but a run in which no distro executed any test never exits 0.
    assert not outcome.executed
    assert stage_exit_status([outcome]) == EXIT_USAGE
    ran = DistroOutcome.from_tests("debian13", [TestResult("raidz/raidz_expand_001_pos", "PASS")])
    assert stage_exit_status([outcome, ran]) == EXIT_OK


def test_with_absent_keeps_order_and_real_results() -> None:
    ran = [TestResult("a/1", "PASS")]
    merged = with_absent(ran, absent_results(["a/1", "a/2", "a/2"], "2.3.2"))
    assert [(t.name, t.result) for t in merged] == [("a/1", "PASS"), ("a/2", "ABSENT")]


def test_recipes_pass_on_exit_zero() -> None:
    outcome = DistroOutcome.from_tests(
        "debian13",
        [TestResult("recipe/pool-ok.sh", "PASS"), TestResult("recipe/pool-corrupt.sh", "FAIL")],
    )
    assert outcome.status is DistroStatus.FAILED
    assert outcome.unexpected == ["recipe/pool-corrupt.sh"]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([DistroStatus.PASSED, DistroStatus.PASSED], EXIT_OK),
        ([DistroStatus.PASSED, DistroStatus.FAILED], EXIT_TEST_FAILURES),
        ([DistroStatus.INCOMPLETE], EXIT_TEST_FAILURES),
        ([DistroStatus.FAILED, DistroStatus.NOT_BUILT], EXIT_INFRASTRUCTURE),
        ([DistroStatus.NO_RESULTS], EXIT_INFRASTRUCTURE),
        ([DistroStatus.INFRA_ERROR, DistroStatus.PASSED], EXIT_INFRASTRUCTURE),
        ([], EXIT_USAGE),
    ],
)
def test_exit_status_of_the_stage(statuses: list[DistroStatus], expected: int) -> None:
    ran = [TestResult("a/t", "PASS")]
    outcomes = [DistroOutcome(f"d{i}", status, tests=ran) for i, status in enumerate(statuses)]
    assert stage_exit_status(outcomes) == expected


def test_usage_errors_win() -> None:
    assert stage_exit_status([DistroOutcome("d", DistroStatus.FAILED)], usage_error=True) == 2


def test_runfiles_are_filtered_to_the_tests_a_suite_has() -> None:
    listing = [
        "/usr/share/zfs/zfs-tests/tests/functional/raidz/raidz_001_neg.ksh",
        "/usr/share/zfs/zfs-tests/tests/functional/raidz/raidz_002_pos.ksh",
        "/usr/share/zfs/zfs-tests/tests/functional/raidz/setup.ksh",
        "/usr/share/zfs/zfs-tests/tests/functional/atime/root_relatime_on.ksh",
        "/usr/share/zfs/zfs-tests/tests/functional/cli_root/zfs_send_delegation.ksh",
        "",
    ]

    filtered = filter_runfile(RUNFILE, present_tests(listing))

    assert filtered.kept == [
        "raidz/raidz_001_neg",
        "raidz/raidz_002_pos",
        "atime/root_relatime_on",
        "cli_root/zfs_send_delegation",
    ]
    assert filtered.absent == ["raidz/raidz_expand_001_pos", "removal/removal_with_hole"]
    text = filtered.text
    assert "[tests/functional/removal]" not in text
    assert "tests = ['raidz_001_neg', 'raidz_002_pos']" in text
    # zfs-tests.sh -T N/M greps single-line `tags = ` entries.
    assert "tags = ['functional', 'raidz']" in text
    assert "[tests/functional/atime:Linux]" in text and "pre = setup" in text
    # The filtered runfile reads back to the same selection.
    assert runfile_tests(text) == filtered.kept
    assert len(runfile_tests(RUNFILE)) == 6
