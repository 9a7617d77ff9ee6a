"""Every verdict, reached on the repository's real consoles (or logs derived from them)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.baseline import Baseline, baselines_dir, load_baseline
from imagefactory.testrun.judge import (
    CRASHED_RESULT,
    judge_run,
    judge_tests,
    kernel_from_system_txt,
)
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus, stage_exit_status
from imagefactory.testrun.results import TestResult, parse_file, parse_log
from imagefactory.testrun.verdict import RunContext, Verdict

LOGS = Path(__file__).parent / "logs"
DEBIAN_LOG = LOGS / "zts-2.3.9-debian13-quick-real.log"
RATIO = "rsend/send-c_verify_ratio"
HIERARCHY = "rsend/send_encrypted_hierarchy"
DEBIAN_TCG = RunContext(distro="debian13", zfs_version="2.3.9-1", kernel="6.12.48", accel="tcg")


def repo_baseline() -> Baseline:
    return load_baseline([baselines_dir()])


def baseline_of(tmp_path: Path, text: str) -> Baseline:
    path = tmp_path / "b.yaml"
    path.write_text(text, encoding="utf-8")
    return load_baseline([path])


def test_our_debian_tcg_flakes_are_expected_with_their_reasons() -> None:
    parsed = parse_file(DEBIAN_LOG)

    outcome = DistroOutcome.from_parsed(
        "debian13", parsed, baseline=repo_baseline(), context=DEBIAN_TCG, zfs_version="2.3.9-1"
    )

    ratio, hierarchy = outcome.verdicts[RATIO], outcome.verdicts[HIERARCHY]
    assert (ratio.verdict, ratio.result) == (Verdict.EXPECTED, "KILLED")
    assert ratio.reason is not None and "10-minute limit under TCG" in ratio.reason
    assert ratio.entry == "baselines/debian13-tcg.yaml:7"
    assert hierarchy.verdict is Verdict.EXPECTED and hierarchy.entry is not None
    assert outcome.status is DistroStatus.PASSED and outcome.unexpected == []
    assert stage_exit_status([outcome]) == 0
    passed = outcome.with_verdict(Verdict.PASS)
    assert len(passed) == len(outcome.tests) - 2
    # zts-report (which knows nothing of TCG) called both unexpected: the report says so.
    assert outcome.judgement.disagreements == [
        f"{RATIO}: zts-report: unexpected KILLED; klab: expected [{ratio.entry}]",
        f"{HIERARCHY}: zts-report: unexpected FAIL; klab: expected [{hierarchy.entry}]",
    ]
    # The real console's summary counts one PASS more than it shows: reported, not a failure.
    assert outcome.judgement.mismatch_line is not None
    assert outcome.judgement.unseen_failures == 0


def test_the_same_results_under_kvm_are_unexpected_failures() -> None:
    kvm = RunContext(distro="debian13", zfs_version="2.3.9-1", kernel="6.12.48", accel="kvm")

    outcome = DistroOutcome.from_parsed(
        "debian13", parse_file(DEBIAN_LOG), baseline=repo_baseline(), context=kvm
    )

    assert outcome.verdicts[RATIO].verdict is Verdict.UNEXPECTED_FAILURE
    assert outcome.verdicts[HIERARCHY].verdict is Verdict.UNEXPECTED_FAILURE
    assert outcome.status is DistroStatus.FAILED
    assert outcome.unexpected == [RATIO, HIERARCHY]
    assert stage_exit_status([outcome]) == 1
    assert outcome.judgement.disagreements == []  # zts-report agrees now


def test_a_scope_the_run_does_not_know_is_not_applied_and_warned() -> None:
    unknown = RunContext(distro="debian13", zfs_version="2.3.9-1")

    judgement = judge_run(parse_file(DEBIAN_LOG), repo_baseline(), unknown)

    assert judgement.verdicts[RATIO].verdict is Verdict.UNEXPECTED_FAILURE
    assert judgement.warnings == [
        f"baselines/debian13-tcg.yaml:7: {RATIO}: not applied: this run's accel is unknown "
        "(give --accel)",
        f"baselines/debian13-tcg.yaml:16: {HIERARCHY}: not applied: this run's accel is "
        "unknown (give --accel)",
    ]


def test_a_known_entry_for_a_test_that_passed_is_an_unexpected_pass(tmp_path: Path) -> None:
    baseline = baseline_of(
        tmp_path,
        "- {test: atime/atime_001_pos, result: FAIL, kind: known, reason: stale entry}\n"
        "- {test: atime/atime_002_neg, result: FAIL, kind: flaky, reason: sometimes}\n",
    )

    outcome = DistroOutcome.from_parsed(
        "debian13", parse_file(DEBIAN_LOG), baseline=baseline, context=DEBIAN_TCG
    )

    stale = outcome.verdicts["atime/atime_001_pos"]
    assert stale.verdict is Verdict.UNEXPECTED_PASS
    assert stale.reason == "expected FAIL: stale entry" and stale.entry == f"{tmp_path}/b.yaml:1"
    # A flaky entry's test may pass: nothing to report.
    assert outcome.verdicts["atime/atime_002_neg"].verdict is Verdict.PASS
    # An unexpected pass changes no exit status: only the two rsend failures count.
    assert outcome.unexpected == [RATIO, HIERARCHY]
    assert stage_exit_status([outcome]) == 1


def test_a_skip_without_an_entry_is_listed_apart_and_never_fails() -> None:
    parsed = parse_file(LOGS / "zts-2.2-sanity.log")

    outcome = DistroOutcome.from_parsed(
        "ubuntu24", parsed, baseline=repo_baseline(), zfs_version="2.2.2-0ubuntu9"
    )

    skip = outcome.verdicts["l2arc/l2arc_arcstats_pos"]
    assert (skip.verdict, skip.result) == (Verdict.SKIP, "SKIP")
    assert not skip.failing
    expected = outcome.verdicts["casenorm/mixed_formd_lookup"]
    assert expected.verdict is Verdict.EXPECTED
    assert expected.reason == "https://github.com/openzfs/zfs/issues/7633"
    assert outcome.unexpected == ["cli_root/zpool_create/zpool_create_002_pos"]


def test_a_skipped_setup_that_is_expected_covers_its_groups_skips(tmp_path: Path) -> None:
    # zts-rerun-maybes.log's first run, with l2arc's setup skipped (as without a cache device).
    segment = parse_file(LOGS / "zts-rerun-maybes.log")
    text = (LOGS / "zts-rerun-maybes.log").read_text().split("Log directory")[0]
    text = text.replace("[PASS]", "[SKIP]").replace("[FAIL]", "[SKIP]")
    text = text.replace("PASS\t   3\nFAIL\t   1", "SKIP\t   4")
    assert len(segment.tests) == 4
    baseline = baseline_of(
        tmp_path, "- {test: l2arc/setup, result: SKIP, kind: flaky, reason: no cache device}\n"
    )

    judgement = judge_run(parse_log(text), baseline, RunContext())

    assert judgement.verdicts["l2arc/setup"].reason == "no cache device"
    miss = judgement.verdicts["l2arc/l2arc_l2miss_pos"]
    assert miss.verdict is Verdict.EXPECTED
    assert miss.reason == "its group's setup was skipped: no cache device"
    assert judgement.of(Verdict.SKIP) == []
    # Without the entry they are plain skips.
    assert len(judge_run(parse_log(text), None, RunContext()).of(Verdict.SKIP)) == 4


def test_a_failure_fixed_by_a_rerun_is_flaky_with_its_attempts() -> None:
    parsed = parse_file(LOGS / "zts-rerun-maybes.log")

    outcome = DistroOutcome.from_parsed("fedora44", parsed)

    miss = outcome.verdicts["l2arc/l2arc_l2miss_pos"]
    assert (miss.verdict, miss.result, miss.attempts) == (Verdict.FLAKY, "PASS", ("FAIL", "PASS"))
    assert miss.reason == "FAIL, PASS: passed on attempt 2"
    assert outcome.status is DistroStatus.PASSED


def test_a_rerun_appended_to_the_real_debian_console_makes_its_failure_flaky() -> None:
    rerun = (
        "[2026-11-22T07:20:00.000000] Test: /usr/share/zfs/zfs-tests/tests/functional/"
        f"{HIERARCHY} (run as root) [00:19] [PASS]\n\nResults Summary\nPASS\t   1\n\n"
        "Running Time:\t00:00:19\nPercent passed:\t100.0%\n"
    )
    parsed = parse_log(DEBIAN_LOG.read_text() + rerun)
    kvm = RunContext(distro="debian13", zfs_version="2.3.9-1", accel="kvm")

    outcome = DistroOutcome.from_parsed("debian13", parsed, baseline=repo_baseline(), context=kvm)

    flaky = outcome.verdicts[HIERARCHY]
    assert (flaky.verdict, flaky.attempts) == (Verdict.FLAKY, ("FAIL", "PASS"))
    # The KILLED one was not rerun: still a failure under KVM.
    assert outcome.unexpected == [RATIO]
    # Under TCG the first attempt was an expected failure: flaky, with the entry's reason.
    tcg = DistroOutcome.from_parsed(
        "debian13", parsed, baseline=repo_baseline(), context=DEBIAN_TCG
    ).verdicts[HIERARCHY]
    assert tcg.verdict is Verdict.FLAKY and tcg.entry == "baselines/debian13-tcg.yaml:16"
    assert tcg.reason is not None and tcg.reason.startswith("FAIL, PASS: passed on attempt 2; ")


def test_absent_tests_and_crashes(tmp_path: Path) -> None:
    aborted = parse_file(LOGS / "zts-aborted.log")
    crashed = TestResult(
        "cli_root/zpool_import/import_rewind_config_changed", CRASHED_RESULT, note="kernel panic"
    )
    aborted.tests.append(crashed)

    outcome = DistroOutcome.from_parsed(
        "debian13",
        aborted,
        absent=absent_results(["raidz/raidz_expand_003_neg"], "2.2.2"),
        baseline=repo_baseline(),
        context=DEBIAN_TCG,
    )

    assert outcome.verdicts[crashed.key].verdict is Verdict.CRASHED
    assert outcome.verdicts[crashed.key].failing
    absent = outcome.verdicts["raidz/raidz_expand_003_neg"]
    assert (absent.verdict, absent.reason) == (Verdict.ABSENT, "absent in zfs-tests 2.2.2")
    assert outcome.status is DistroStatus.INCOMPLETE


def test_recipes_are_judged_like_tests(tmp_path: Path) -> None:
    baseline = baseline_of(
        tmp_path,
        "- {test: recipes/always-fails, result: FAIL, kind: known, reason: it is meant to}\n",
    )
    tests = [TestResult("recipes/always-fails", "FAIL"), TestResult("recipes/ok", "PASS")]

    outcome = DistroOutcome.from_tests("debian13", tests, baseline=baseline)

    assert outcome.verdicts["recipes/always-fails"].verdict is Verdict.EXPECTED
    assert outcome.status is DistroStatus.PASSED
    raw = DistroOutcome.from_tests("debian13", tests)
    assert raw.status is DistroStatus.FAILED and raw.unexpected == ["recipes/always-fails"]


def test_the_most_specific_entry_gives_the_reason_and_expired_ones_are_reported(
    tmp_path: Path,
) -> None:
    baseline = baseline_of(
        tmp_path,
        """\
- {test: "rsend/*", result: [FAIL, KILLED], kind: flaky, reason: any rsend}
- {test: rsend/send-c_verify_ratio, result: KILLED, kind: flaky, reason: exact}
- {test: rsend/send-c_verify_ratio, result: KILLED, kind: flaky, reason: tcg, accel: tcg,
   expires: 2026-01-31}
- {test: rsend/send_encrypted_hierarchy, result: KILLED, kind: known, reason: wrong word,
   distros: [debian13], accel: tcg}
""",
    )

    judgement = judge_run(parse_file(DEBIAN_LOG), baseline, DEBIAN_TCG, today=date(2026, 12, 1))

    assert judgement.verdicts[RATIO].reason == "tcg"
    assert judgement.review == [
        f"{tmp_path}/b.yaml:3: {RATIO}: expired on 2026-01-31: still applied; "
        "check whether it still holds (tcg)"
    ]
    # The most specific entry for HIERARCHY expects KILLED; the glob's FAIL still covers it.
    assert judgement.verdicts[HIERARCHY].reason == "any rsend"


def test_a_result_the_baseline_does_not_list_says_what_it_expected(tmp_path: Path) -> None:
    baseline = baseline_of(
        tmp_path, f"- {{test: {HIERARCHY}, result: KILLED, kind: flaky, reason: slow}}\n"
    )

    judgement = judge_run(parse_file(DEBIAN_LOG), baseline, DEBIAN_TCG)

    verdict = judgement.verdicts[HIERARCHY]
    assert verdict.verdict is Verdict.UNEXPECTED_FAILURE
    assert verdict.reason == f"the baseline expects KILLED ({tmp_path}/b.yaml:1), not FAIL"


def test_a_summary_that_counts_a_failure_no_line_shows_fails_the_distro() -> None:
    text = DEBIAN_LOG.read_text().replace("FAIL\t   1\n", "FAIL\t   2\n")

    outcome = DistroOutcome.from_parsed(
        "debian13", parse_log(text), baseline=repo_baseline(), context=DEBIAN_TCG
    )

    assert outcome.unexpected == []  # every line is expected...
    assert outcome.status is DistroStatus.FAILED  # ...but the summary counts one more FAIL
    assert outcome.message is not None and "1 FAIL/KILLED that no result line shows" in (
        outcome.message
    )
    assert stage_exit_status([outcome]) == 1


def test_counts_cover_every_verdict() -> None:
    tests = [TestResult("a/p", "PASS"), TestResult("a/f", "FAIL"), TestResult("a/s", "SKIP")]

    judgement = judge_tests(tests, None, RunContext())

    assert judgement.counts() == {
        "pass": 1,
        "expected": 0,
        "unexpected-failure": 1,
        "unexpected-pass": 0,
        "skip": 1,
        "flaky": 0,
        "absent": 0,
        "crashed": 0,
    }


def test_the_kernel_release_is_read_from_system_txt(tmp_path: Path) -> None:
    system = tmp_path / "system.txt"
    system.write_text(
        "date: 2026-11-22T06:43:00Z\n"
        "kernel: Linux debian13-t1 6.12.48+deb13-amd64 #1 SMP PREEMPT_DYNAMIC x86_64 GNU/Linux\n"
    )
    assert kernel_from_system_txt(system) == "6.12.48+deb13-amd64"
    assert kernel_from_system_txt(tmp_path / "missing.txt") is None
    system.write_text("kernel: \n")
    assert kernel_from_system_txt(system) is None
