"""The console parser on hand-written logs in each zfs-tests.sh format."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.testrun.results import (
    NoResultsError,
    TestResult,
    category,
    locate_test_logs,
    name_from_path,
    parse_file,
    parse_log,
)

LOGS = Path(__file__).parent / "logs"


def by_key(tests: list[TestResult]) -> dict[str, TestResult]:
    return {t.key: t for t in tests}


def test_old_format_is_parsed_with_summary_report_and_removed_tests() -> None:
    run = parse_file(LOGS / "zts-2.2-sanity.log")

    assert run.line_format == "2.2"
    assert run.complete and run.summary_printed
    assert run.summary == {"PASS": 16, "FAIL": 2, "SKIP": 1}
    assert len(run.tests) == 19
    assert run.running_time_s == 3 * 60 + 11
    assert run.percent_passed == 84.2
    assert run.log_dir == "/var/tmp/test_results/20260301T101500"
    tests = by_key(run.tests)
    create = tests["cli_root/zpool_create/zpool_create_001_pos"]
    assert (create.result, create.duration_s, create.reran) == ("PASS", 72.0, False)
    assert tests["cli_user/misc/zfs_get_001_neg"].user == "zfs"
    # A :Linux section's setup shares its name with the plain section's setup.
    assert tests["atime/setup (Linux)"].identifier == "Linux"
    assert tests["atime/setup"].identifier is None
    assert run.removed == ["raidz/raidz_expand_001_pos", "raidz/raidz_expand_002_pos"]
    assert run.report_present
    assert [(e.result, e.name) for e in run.expected] == [
        ("FAIL", "casenorm/mixed_formd_lookup"),
        ("SKIP", "l2arc/l2arc_arcstats_pos"),
    ]
    assert run.expected[0].detail == "https://github.com/openzfs/zfs/issues/7633"
    assert run.unexpected_pass == []
    assert [e.name for e in run.unexpected] == ["cli_root/zpool_create/zpool_create_002_pos"]
    # The expected casenorm FAIL does not count against the run; the zpool_create one does.
    assert run.unexpected_failures() == ["cli_root/zpool_create/zpool_create_002_pos"]


def test_timestamped_format_keeps_killed_reran_and_long_durations() -> None:
    run = parse_file(LOGS / "zts-2.4-timestamps.log")

    assert run.line_format == "2.4"
    assert run.complete
    assert run.summary == {"PASS": 5, "FAIL": 1, "SKIP": 1, "KILLED": 1, "RERAN": 1}
    tests = by_key(run.tests)
    killed = tests["fault/auto_replace_001_pos (Linux)"]
    assert (killed.result, killed.duration_s, killed.identifier) == ("KILLED", 600.0, "Linux")
    assert killed.timestamp == "2026-04-22T03:45:02.000001"
    reran = tests["fault/auto_spare_001_pos (Linux)"]
    assert (reran.result, reran.reran) == ("PASS", True)
    assert tests["raidz/raidz_expand_001_pos"].duration_s == 122 * 60.0
    assert run.running_time_s == 2 * 3600 + 14 * 60 + 24
    assert [e.name for e in run.unexpected_pass] == ["raidz/raidz_expand_001_pos"]
    assert sorted(run.unexpected_failures()) == [
        "fault/auto_replace_001_pos",
        "removal/removal_with_add",
    ]


def test_a_real_console_of_the_quick_suite_on_debian13_is_parsed() -> None:
    """zfs-tests.sh 2.3.9 as `klab rc` ran it in a Debian 13 clone under TCG (a loaded host:
    one test killed at its 10-minute limit, one failed), byte for byte as it came home."""
    run = parse_file(LOGS / "zts-2.3.9-debian13-quick-real.log")

    assert run.line_format == "2.4"  # 2.3.9 already prints the [timestamp] prefix
    assert run.complete and run.summary_printed and run.report_present
    assert run.summary == {"PASS": 96, "FAIL": 1, "KILLED": 1}
    # The summary is reported as printed; the rows are the result lines, and this runner
    # printed 95 PASS lines against its own count of 96.
    results = [t.result for t in run.tests]
    assert (len(results), results.count("PASS")) == (97, 95)
    assert run.running_time_s == 27 * 60 + 6
    assert [(u.name, u.result) for u in run.unexpected] == [
        ("rsend/send-c_verify_ratio", "KILLED"),
        ("rsend/send_encrypted_hierarchy", "FAIL"),
    ]
    tests = by_key(run.tests)
    killed = tests["rsend/send-c_verify_ratio"]
    assert (killed.result, killed.duration_s) == ("KILLED", 601.0)
    # The same setup in the plain and the :Linux section of a group stays two results.
    assert sum(1 for t in run.tests if t.name == "atime/setup") == 2


def test_aborted_run_without_summary_is_incomplete_and_counted_from_lines() -> None:
    run = parse_file(LOGS / "zts-aborted.log")

    assert not run.complete
    assert not run.summary_printed
    assert run.summary == {"PASS": 2, "FAIL": 1}
    assert run.has_results
    assert run.log_dir is None
    # Without a zts-report, every FAIL/KILLED is unexpected.
    assert not run.report_present
    assert run.unexpected_failures() == ["cli_root/zpool_import/import_cachefile_device_removed"]


def test_zero_tests_matched_is_no_results_and_an_error() -> None:
    run = parse_file(LOGS / "zts-zero-tests.log")

    assert not run.has_results
    assert not run.complete
    assert run.tests == [] and run.summary == {}
    assert run.log_dir is None  # "Could not determine log directory." is not a path
    assert "zts-report: no test results were found" in run.diagnostics
    with pytest.raises(NoResultsError, match="no test results") as info:
        run.require_results("zero.log")
    assert info.value.exit_status == 1


def test_rerun_of_maybes_supersedes_the_first_result_and_its_counts() -> None:
    run = parse_file(LOGS / "zts-rerun-maybes.log")

    assert run.complete
    assert by_key(run.tests)["l2arc/l2arc_l2miss_pos"].result == "PASS"
    assert [t.name for t in run.tests] == [
        "l2arc/setup",
        "l2arc/l2arc_l2miss_pos",
        "l2arc/persist_l2arc_001_pos",
        "l2arc/cleanup",
    ]
    assert run.summary == {"PASS": 4}
    assert run.running_time_s == 44 + 30
    assert run.percent_passed == 100.0
    assert run.log_dir == "/var/tmp/test_results/20260301T120100"
    assert run.report_present and run.unexpected == []


def test_concatenated_consoles_of_two_vms_add_up() -> None:
    first = (LOGS / "zts-2.2-sanity.log").read_text()
    second = (LOGS / "zts-2.4-timestamps.log").read_text()

    run = parse_log(first + second)

    assert run.summary == {"PASS": 21, "FAIL": 3, "SKIP": 2, "KILLED": 1, "RERAN": 1}
    assert len(run.tests) == 19 + 8
    assert run.percent_passed == round(100 * 21 / 27, 1)
    assert run.line_format == "2.4"


def test_quiet_mode_counts_passes_from_the_summary_only() -> None:
    log = (
        "Test: /usr/share/zfs/zfs-tests/tests/functional/arc/arcstats_runtime_tuning "
        "(run as root) [00:02] [FAIL]\n"
        "\nResults Summary\nPASS\t 120\nFAIL\t   1\n\nRunning Time:\t00:20:00\n"
        "Percent passed:\t99.2%\nLog directory:\t/var/tmp/test_results/20260301T000000\n"
    )

    run = parse_log(log)

    assert run.summary == {"PASS": 120, "FAIL": 1}
    assert len(run.tests) == 1
    assert run.has_results and run.complete


def test_only_a_summary_of_passes_still_has_results() -> None:
    run = parse_log("\nResults Summary\nPASS\t   7\n\nRunning Time:\t00:00:09\n")

    assert run.tests == []
    assert run.has_results and run.complete


def test_noise_from_other_hosts_is_tolerated() -> None:
    """ANSI colours, CI line prefixes, CRLF, and an unknown result word."""
    green, reset = "\x1b[1;32m", "\x1b[0m"
    log = (
        "[vm1: 10:00:01 count(1|2)] Test: /usr/share/zfs/zfs-tests/tests/functional/"
        f"mount/mount_loopback (run as root) [00:03] [{green}PASS{reset}]\r\n"
        "[vm1: 10:00:04 count(2|2)] Test: /usr/share/zfs/zfs-tests/tests/perf/regression/"
        "random_reads (run as root) [00:01] [UNKNOWN]\r\n"
        "[vm1: 10:00:05] \r\n"
        "[vm1: 10:00:05] Results Summary\r\n"
        "[vm1: 10:00:05] PASS\t   1\r\n"
        "[vm1: 10:00:05] FAIL\t   1\r\n"
        "[vm1: 10:00:05] \r\n"
        "[vm1: 10:00:05] Running Time:\t00:00:04\r\n"
        "[vm1: 10:00:06] Tests with results other than PASS that are unexpected:\r\n"
        "[vm1: 10:00:06]     UNKNOWN random_reads (expected PASS)\r\n"
        "[vm1: 10:00:06] \r\n"
        "[vm1: 10:00:07] ZTS run finished (not an entry)\r\n"
    )

    run = parse_log(log)

    assert [(t.name, t.result) for t in run.tests] == [
        ("mount/mount_loopback", "PASS"),
        ("random_reads", "UNKNOWN"),
    ]
    assert run.summary == {"PASS": 1, "FAIL": 1}
    assert run.complete and run.running_time_s == 4
    assert category("UNKNOWN") == "fail"
    assert run.report_present
    assert [(e.result, e.name, e.detail) for e in run.unexpected] == [
        ("UNKNOWN", "random_reads", "expected PASS")
    ]
    # The summary counts a FAIL that no line shows (the line says UNKNOWN): kept apart, and
    # the run cannot pass on it, whatever the lines say.
    assert run.summary_mismatch == {
        "summary": {"FAIL": 1, "UNKNOWN": 0},
        "rows": {"FAIL": 0, "UNKNOWN": 1},
        "unseen_failures": {"FAIL": 1},
    }
    assert run.unexpected_failures() == [
        "random_reads",
        "(summary: 1 FAIL with no result line)",
    ]


def test_unknown_flag_usage_is_reported_as_a_diagnostic() -> None:
    log = (
        "USAGE:\n/usr/share/zfs/zfs-tests.sh [-hvqxkfS] [-s SIZE] [-r RUNFILES] [-t PATH] "
        "[-u USER]\n\nDESCRIPTION:\n\tZFS Test Suite launch script\n"
    )

    run = parse_log(log)

    assert not run.has_results
    assert any("usage" in d for d in run.diagnostics)
    with pytest.raises(NoResultsError, match="usage"):
        run.require_results("usage.log")


def test_setup_refusal_is_reported_as_a_diagnostic() -> None:
    run = parse_log("zfs-tests.sh: Failed file exists: /var/tmp/file-vdev0\n")

    assert run.diagnostics == ["zfs-tests.sh: Failed file exists: /var/tmp/file-vdev0"]


def test_iterations_keep_the_worst_result_of_a_test() -> None:
    path = "/usr/share/zfs/zfs-tests/tests/functional/zvol/zvol_misc/zvol_misc_snapdev"
    log = (
        "".join(f"Test: {path} (run as root) [00:05] [{r}]\n" for r in ("PASS", "FAIL", "PASS"))
        + "\nResults Summary\nPASS\t   2\nFAIL\t   1\n"
    )

    run = parse_log(log)

    assert [(t.name, t.result) for t in run.tests] == [("zvol/zvol_misc/zvol_misc_snapdev", "FAIL")]
    assert run.summary == {"PASS": 2, "FAIL": 1}


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/usr/share/zfs/zfs-tests/tests/functional/atime/atime_001_pos", "atime/atime_001_pos"),
        ("tests/functional/cli_root/zfs/zfs_001_neg.ksh", "cli_root/zfs/zfs_001_neg"),
        ("/opt/zfs-tests/tests/perf/regression/sequential_writes", "sequential_writes"),
        ("/home/zfs/my-checks/pool_smoke", "/home/zfs/my-checks/pool_smoke"),
    ],
)
def test_test_names_are_relative_to_the_suite(path: str, name: str) -> None:
    assert name_from_path(path) == name


def test_json_has_the_documented_keys() -> None:
    data = parse_file(LOGS / "zts-2.4-timestamps.log").to_json()

    assert {"summary", "tests", "complete", "unexpected"} <= data.keys()
    assert data["tests"][0] == {
        "name": "fault/setup",
        "result": "PASS",
        "duration_s": 1.0,
        "reran": False,
        "user": "root",
        "timestamp": "2026-04-22T03:34:17.694616",
    }
    assert data["unexpected"][0] == {
        "name": "fault/auto_replace_001_pos",
        "result": "KILLED",
        "detail": "expected PASS",
    }


def test_test_logs_are_found_in_both_output_layouts(tmp_path: Path) -> None:
    old = tmp_path / "old"
    for rel in ("zpool_create/zpool_create_001_pos", "atime/atime_001_pos", "atime/setup"):
        (old / rel).mkdir(parents=True)
        (old / rel / "merged").write_text("ok\n")
    new = tmp_path / "new" / "output"
    for rel in ("cli_root/zpool_create/zpool_create_001_pos", "atime:Linux/root_relatime_on"):
        (new / rel).mkdir(parents=True)
        (new / rel / "stdout").write_text("ok\n")

    old_logs = locate_test_logs(
        old, ["cli_root/zpool_create/zpool_create_001_pos", "atime/atime_001_pos", "arc/x"]
    )
    new_logs = locate_test_logs(
        tmp_path / "new",
        ["cli_root/zpool_create/zpool_create_001_pos", "atime/root_relatime_on"],
    )

    assert old_logs == {
        "cli_root/zpool_create/zpool_create_001_pos": old / "zpool_create/zpool_create_001_pos",
        "atime/atime_001_pos": old / "atime/atime_001_pos",
    }
    assert new_logs == {
        "cli_root/zpool_create/zpool_create_001_pos": new
        / "cli_root/zpool_create/zpool_create_001_pos",
        "atime/root_relatime_on": new / "atime:Linux/root_relatime_on",
    }


# --- the Results Summary against the result lines -----------------------------------------

TEST_LINE = "Test: /usr/share/zfs/zfs-tests/tests/functional/{} (run as root) [00:01] [{}]\n"


def console(*segments: tuple[list[tuple[str, str]], dict[str, int]]) -> str:
    """Result lines, each group followed by its Results Summary (as zfs-tests.sh prints)."""
    text = ""
    for lines, summary in segments:
        text += "".join(TEST_LINE.format(name, result) for name, result in lines)
        text += "\nResults Summary\n" + "".join(f"{k}\t{n: 4d}\n" for k, n in summary.items())
        text += "\nRunning Time:\t00:00:10\n"
    return text


def test_a_counted_failure_without_its_line_fails_the_run() -> None:
    """A serial console dropped the FAIL line: the lines alone would read green."""
    from imagefactory.testrun.outcome import DistroOutcome, DistroStatus, stage_exit_status

    run = parse_log(console(([("a/setup", "PASS"), ("a/t1", "PASS")], {"PASS": 2, "FAIL": 1})))

    assert run.summary_mismatch == {
        "summary": {"FAIL": 1},
        "rows": {"FAIL": 0},
        "unseen_failures": {"FAIL": 1},
    }
    assert run.unseen_failures == 1
    assert run.unexpected_failures() == ["(summary: 1 FAIL with no result line)"]
    assert run.mismatch_line() == (
        "Results Summary counts FAIL 1; the result lines show FAIL 0 "
        "(1 failure(s) with no result line: a failure)"
    )
    assert run.to_json()["summary_mismatch"] == run.summary_mismatch
    outcome = DistroOutcome.from_parsed("debian13", run)
    assert outcome.status is DistroStatus.FAILED
    assert stage_exit_status([outcome]) == 1


def test_a_counted_kill_fails_the_run_even_when_zts_report_lists_nothing() -> None:
    log = console(([("a/t1", "PASS")], {"PASS": 1, "KILLED": 1})) + (
        "\nTests with results other than PASS that are unexpected:\n\n"
    )

    run = parse_log(log)

    assert run.report_present and run.unexpected == []
    assert run.unexpected_failures() == ["(summary: 1 KILLED with no result line)"]


def test_quiet_runs_count_passes_without_lines_a_mismatch_but_no_failure() -> None:
    run = parse_log(console(([("a/t1", "SKIP")], {"PASS": 120, "SKIP": 1})))

    assert run.summary_mismatch == {
        "summary": {"PASS": 120},
        "rows": {"PASS": 0},
        "unseen_failures": {},
    }
    assert run.unseen_failures == 0
    assert run.unexpected_failures() == []
    assert run.mismatch_line() == "Results Summary counts PASS 120; the result lines show PASS 0"


def test_the_real_console_prints_one_pass_line_fewer_than_it_counts() -> None:
    run = parse_file(LOGS / "zts-2.3.9-debian13-quick-real.log")

    assert run.summary_mismatch == {
        "summary": {"PASS": 96},
        "rows": {"PASS": 95},
        "unseen_failures": {},
    }
    assert run.unexpected_failures() == [
        "rsend/send-c_verify_ratio",
        "rsend/send_encrypted_hierarchy",
    ]


def test_agreeing_summaries_are_no_mismatch() -> None:
    for name in ("zts-2.2-sanity.log", "zts-2.4-timestamps.log", "zts-rerun-maybes.log"):
        run = parse_file(LOGS / name)
        assert run.summary_mismatch is None and run.mismatch_line() is None, name
        assert run.to_json()["summary_mismatch"] is None


def test_each_summary_is_checked_against_its_own_segment() -> None:
    """A later rerun that passes cannot hide the FAIL an earlier summary counted unseen."""
    run = parse_log(
        console(
            ([("a/t1", "PASS")], {"PASS": 1, "FAIL": 1}),
            ([("a/t2", "PASS")], {"PASS": 1}),
            ([("a/t3", "FAIL")], {"PASS": 1}),
        )
    )

    assert run.summary_mismatch == {
        "summary": {"FAIL": 1, "PASS": 1},
        "rows": {"FAIL": 1, "PASS": 0},
        "unseen_failures": {"FAIL": 1},
        "segments": [1, 3],
    }
    assert run.unexpected_failures() == ["a/t3", "(summary: 1 FAIL with no result line)"]


# --- attempts -----------------------------------------------------------------------------


def test_a_rerun_keeps_every_attempt_and_the_last_decides() -> None:
    run = parse_file(LOGS / "zts-rerun-maybes.log")

    tests = by_key(run.tests)
    assert tests["l2arc/l2arc_l2miss_pos"].attempts == ("FAIL", "PASS")
    assert tests["l2arc/l2arc_l2miss_pos"].result == "PASS"
    assert tests["l2arc/setup"].attempts == ("PASS", "PASS")
    assert tests["l2arc/persist_l2arc_001_pos"].attempts == ("PASS",)
    data = {t["name"]: t for t in run.to_json()["tests"]}
    assert data["l2arc/l2arc_l2miss_pos"]["attempts"] == ["FAIL", "PASS"]
    assert "attempts" not in data["l2arc/persist_l2arc_001_pos"]  # one attempt: implied


def test_retries_appended_after_the_first_summary_supersede_it() -> None:
    """The lab's retries: the guest reruns each FAIL/KILLED with its section's setup and
    cleanup, and appends that run's console after the first summary."""
    first = (
        [("r/setup", "PASS"), ("r/flaky", "FAIL"), ("r/broken", "KILLED"), ("r/ok", "PASS")],
        {"PASS": 2, "FAIL": 1, "KILLED": 1},
    )
    retry_1 = (
        [("r/setup", "PASS"), ("r/flaky", "PASS"), ("r/broken", "FAIL")],
        {"PASS": 2, "FAIL": 1},
    )
    retry_2 = ([("r/setup", "PASS"), ("r/broken", "FAIL")], {"PASS": 1, "FAIL": 1})

    run = parse_log(console(first, retry_1, retry_2))

    tests = by_key(run.tests)
    assert {k: t.attempts for k, t in tests.items()} == {
        "r/setup": ("PASS", "PASS", "PASS"),
        "r/flaky": ("FAIL", "PASS"),
        "r/broken": ("KILLED", "FAIL", "FAIL"),
        "r/ok": ("PASS",),
    }
    assert run.summary == {"PASS": 3, "FAIL": 1}  # the final results, one per test
    assert run.summary_mismatch is None
    assert run.unexpected_failures() == ["r/broken"]
    assert run.complete and run.running_time_s == 30


def test_iterations_in_one_segment_are_one_attempt_with_the_worst_result() -> None:
    log = console(([("z/t", "PASS"), ("z/t", "FAIL"), ("z/t", "PASS")], {"PASS": 2, "FAIL": 1}))

    (test,) = parse_log(log).tests

    assert (test.result, test.attempts) == ("FAIL", ("FAIL",))


def test_results_made_elsewhere_have_one_attempt() -> None:
    assert TestResult("recipes/x", "PASS").attempts == ("PASS",)
    assert TestResult("recipes/x", "PASS", attempts=("FAIL", "PASS")).attempts == ("FAIL", "PASS")
