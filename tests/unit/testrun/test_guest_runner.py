"""The in-guest runner (hooks/testrun/50-klab-test.sh), run here against a fake suite.

The hook is built exactly as a clone's seed carries it (`runner_hook`: script, inputs
appended, environment), then executed on this host with a few test-only overrides that
point it at a fake zfs-tests.sh, a fake bpftrace and a plain file as the results disk.
The host side then reads that "disk" and judges it, so each test pins the whole contract
between guest and host, without a VM.
"""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
from pathlib import Path

import pytest

from imagefactory.spec.loader import load_distro
from imagefactory.testrun.collect import GoldenFacts, judge
from imagefactory.testrun.guest import runner_hook
from imagefactory.testrun.outcome import DistroStatus, stage_exit_status
from imagefactory.testrun.results_disk import create_results_disk, extract_results, read_header
from imagefactory.testrun.selection import Selection, parse_selection
from imagefactory.testrun.verdict import Verdict
from tests.unit.testrun.fake_suite import (
    OPTS_2_2_2,
    OPTS_2_3,
    OPTS_2_4,
    FakeSuite,
    make_fake_suite,
)

FACTS = GoldenFacts("build-1", "2.3.9-1", "2.3.9-1")


def sections(runfile: str) -> dict[str, list[str]]:
    parser = configparser.RawConfigParser(default_section="\x00")
    parser.read_string(runfile)
    return {
        s: ast.literal_eval(parser.get(s, "tests")) for s in parser.sections() if s != "DEFAULT"
    }


def run_hook(
    tmp_path: Path,
    fake: FakeSuite,
    selection: Selection,
    *,
    timeout: float = 120,
    retries: int = 0,
    tests: tuple[str, ...] | None = None,
    absent: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    resolved = load_distro("debian13", lineage="ztest")
    hook = runner_hook(resolved, selection, timeout, tests=tests, absent=absent, retries=retries)
    script = tmp_path / hook.name
    script.write_bytes(hook.content)
    script.chmod(0o755)
    disk = create_results_disk(tmp_path / "results.img", 64 * 1024 * 1024)
    env = {**os.environ, **hook.env, **fake.env(), "KLAB_RESULTS_DEV": str(disk)}
    env["KLAB_TEST_USER"] = subprocess.run(
        ["id", "-un"], capture_output=True, text=True, check=True
    ).stdout.strip()
    env.update(extra_env or {})
    proc = subprocess.run(
        [str(script)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return proc, disk


def bring_home(disk: Path, tmp_path: Path) -> Path:
    artifacts = tmp_path / "artifacts"
    extract_results(disk, artifacts)
    return artifacts


@pytest.fixture
def fake(tmp_path: Path) -> FakeSuite:
    return make_fake_suite(tmp_path / "suite")


def test_a_single_test_runs_with_its_directory_setup_and_comes_home(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(run=["cli_root/zpool_create/zpool_create_001_pos"])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    artifacts = bring_home(disk, tmp_path)
    judged = judge("debian13", artifacts, selection, FACTS)
    assert judged.outcome.status is DistroStatus.PASSED
    assert [(t.name, t.result) for t in judged.outcome.tests] == [
        ("cli_root/zpool_create/zpool_create_001_pos", "PASS")
    ]
    runfile = (artifacts / "selection.run").read_text()
    assert "[tests/functional/cli_root/zpool_create]" in runfile
    assert "tests = ['zpool_create_001_pos']" in runfile
    assert "pre = setup" in runfile
    # Everything the host promises to bring home is there.
    for name in ("test.log", "dmesg.txt", "system.txt", "runner.log", "golden.json",
                 "zfs-tests.rc", "bpftrace/zio.txt", "bpftrace/txg.txt"):  # fmt: skip
        assert (artifacts / name).is_file(), name
    assert (artifacts / "test_results" / "cli_root/zpool_create/zpool_create_001_pos").is_dir()
    assert judged.log_paths == {
        "cli_root/zpool_create/zpool_create_001_pos": (
            "test_results/cli_root/zpool_create/zpool_create_001_pos"
        )
    }


def test_bpftrace_runs_alongside_and_prints_its_totals_on_sigint(
    tmp_path: Path, fake: FakeSuite
) -> None:
    proc, disk = run_hook(tmp_path, fake, parse_selection(run=["atime/atime_001_pos"]))

    assert proc.returncode == 0, proc.stderr
    artifacts = bring_home(disk, tmp_path)
    for name in ("zio", "txg"):
        trace = (artifacts / "bpftrace" / f"{name}.txt").read_text()
        assert "Attaching 3 probes" in trace
        assert "@done[read]: 3" in trace  # the END output: stopped with SIGINT, not killed


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        (OPTS_2_2_2, ["-v", "-K"]),
        (OPTS_2_3, ["-v", "-K"]),
        (OPTS_2_4, ["-v", "-K", "-O"]),
    ],
    ids=["2.2.2", "2.3", "2.4"],
)
def test_flags_are_only_those_the_installed_suite_knows(
    tmp_path: Path, opts: str, expected: list[str]
) -> None:
    """An unknown flag makes zfs-tests.sh print usage and exit 0: it must never be passed."""
    fake = make_fake_suite(tmp_path / "suite", opts=opts)

    proc, disk = run_hook(tmp_path, fake, parse_selection(run=["atime/atime_001_pos"]))

    assert proc.returncode == 0, proc.stderr
    args = fake.zts_args()
    assert args[: len(expected)] == expected
    assert args[len(expected)] == "-r"
    judged = judge("debian13", bring_home(disk, tmp_path), Selection("run", ("x",)), FACTS)
    assert judged.outcome.counts.passed == 1


def test_a_curated_suite_records_tests_this_version_lacks_as_absent(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(suite="quick")

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    results = {t.name: t.result for t in judged.outcome.tests}
    assert results == {
        "atime/atime_001_pos": "PASS",
        "cli_root/zpool_create/zpool_create_001_pos": "PASS",
        "atime/root_atime_on": "ABSENT",
    }
    absent = next(t for t in judged.outcome.tests if t.result == "ABSENT")
    assert absent.note == "absent in zfs-tests 2.3.9-1"
    assert judged.outcome.status is DistroStatus.PASSED


def test_groups_select_sections_by_tag_or_directory(tmp_path: Path, fake: FakeSuite) -> None:
    selection = parse_selection(group=["atime,casenorm"])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    names = sorted(t.key for t in judged.outcome.tests)
    assert names == [
        "atime/atime_001_pos",
        "atime/atime_002_neg",
        "atime/atime_003_pos (Linux)",
        "casenorm/sensitive_none_fail",
    ]
    # The fake fails tests named *fail*; without a zts-report, FAIL is unexpected.
    assert judged.outcome.status is DistroStatus.FAILED
    assert stage_exit_status([judged.outcome]) == 1


def test_a_selection_that_matches_nothing_runs_nothing_and_says_so(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(group=["no_such_group"])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    assert not fake.args_file.exists(), "zfs-tests.sh must not run on an empty selection"
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    assert judged.selection_empty
    assert judged.outcome.status is DistroStatus.NO_RESULTS
    assert "group=no_such_group" in (judged.outcome.message or "")


def test_a_test_absent_in_this_suite_is_absent_not_failed(tmp_path: Path, fake: FakeSuite) -> None:
    selection = parse_selection(run=["raidz/raidz_expand_001_pos"])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    assert [(t.name, t.result) for t in judged.outcome.tests] == [
        ("raidz/raidz_expand_001_pos", "ABSENT")
    ]
    assert judged.outcome.status is DistroStatus.PASSED
    assert "absent" in (judged.outcome.message or "")


def test_a_run_cut_off_by_the_timeout_still_comes_home_incomplete(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(run=["atime/atime_001_pos"])

    proc, disk = run_hook(tmp_path, fake, selection, timeout=3, extra_env={"FAKE_ZTS_HANG": "1"})

    assert proc.returncode == 0, proc.stderr
    artifacts = bring_home(disk, tmp_path)
    assert "stopped after the 3s timeout" in (artifacts / "test.log").read_text()
    assert (artifacts / "zfs-tests.rc").read_text().strip() in ("124", "137")
    judged = judge("debian13", artifacts, selection, FACTS)
    assert judged.outcome.status is DistroStatus.INCOMPLETE


def test_recipes_pass_on_exit_0_fail_otherwise_and_find_the_goldens_lib(
    tmp_path: Path, fake: FakeSuite
) -> None:
    good = tmp_path / "good.sh"
    good.write_text(
        '#!/usr/bin/env bash\nsource "$(dirname "$(readlink -f "$0")")/_lib.sh"\npass\n'
    )
    bad = tmp_path / "bad.sh"
    bad.write_text("echo broken >&2\nexit 3\n")  # no shebang, not executable: run with bash
    selection = parse_selection(recipe=[str(good), str(bad)])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    artifacts = bring_home(disk, tmp_path)
    judged = judge("debian13", artifacts, selection, FACTS)
    assert [(t.name, t.result) for t in judged.outcome.tests] == [
        ("recipes/good", "PASS"),
        ("recipes/bad", "FAIL"),
    ]
    assert judged.outcome.status is DistroStatus.FAILED
    assert "good: PASS" in (artifacts / "recipes" / "good.log").read_text()
    assert "broken" in (artifacts / "test.log").read_text()
    assert judged.log_paths["recipes/bad"] == "recipes/bad.log"


def test_a_recipe_past_the_timeout_is_killed(tmp_path: Path, fake: FakeSuite) -> None:
    slow = tmp_path / "slow.sh"
    slow.write_text("#!/usr/bin/env bash\nsleep 600\n")
    selection = parse_selection(recipe=[str(slow)])

    proc, disk = run_hook(tmp_path, fake, selection, timeout=2)

    assert proc.returncode == 0, proc.stderr
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    assert [(t.name, t.result) for t in judged.outcome.tests] == [("recipes/slow", "KILLED")]


def test_without_a_results_disk_the_runner_fails_and_the_host_sees_no_header(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(run=["atime/atime_001_pos"])
    missing = tmp_path / "absent-dir" / "disk.img"

    proc, disk = run_hook(tmp_path, fake, selection, extra_env={"KLAB_RESULTS_DEV": str(missing)})

    assert proc.returncode == 1
    assert read_header(disk) is None


def test_failed_tests_are_retried_in_their_section_and_every_attempt_comes_home(
    tmp_path: Path, fake: FakeSuite
) -> None:
    selection = parse_selection(group=["rsend"])

    proc, disk = run_hook(tmp_path, fake, selection, retries=2)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    artifacts = bring_home(disk, tmp_path)
    judged = judge("debian13", artifacts, selection, FACTS)
    attempts = {t.name: t.attempts for t in judged.outcome.tests}
    assert attempts == {
        "rsend/rsend_001_pos": ("PASS",),
        "rsend/rsend_002_flaky": ("FAIL", "PASS"),
        "rsend/rsend_003_fail": ("FAIL", "FAIL", "FAIL"),
        "rsend/rsend_004_killed_flaky": ("KILLED", "PASS"),
    }
    verdicts = judged.outcome.judgement.verdicts
    assert verdicts["rsend/rsend_002_flaky"].verdict is Verdict.FLAKY
    assert verdicts["rsend/rsend_004_killed_flaky"].verdict is Verdict.FLAKY
    assert verdicts["rsend/rsend_003_fail"].verdict is Verdict.UNEXPECTED_FAILURE
    assert judged.outcome.status is DistroStatus.FAILED  # rsend_003 fails every attempt
    # Each retry ran only what had just failed, in its section with setup and cleanup.
    first, retry1, retry2 = fake.runfiles_run()
    assert "rsend_001_pos" in first
    assert sections(retry1) == {
        "tests/functional/rsend": ["rsend_002_flaky", "rsend_003_fail", "rsend_004_killed_flaky"]
    }
    assert sections(retry2) == {"tests/functional/rsend": ["rsend_003_fail"]}
    assert "pre = setup" in retry2 and "post = cleanup" in retry2
    assert (artifacts / "retry2.run").read_text() == retry2
    # Every run's per-test output is kept, the first run's where it always was.
    assert (artifacts / "test_results" / "rsend" / "rsend_001_pos").is_dir()
    assert (artifacts / "test_results-retry2" / "rsend" / "rsend_003_fail").is_dir()
    assert [
        line.split("\t")[:2] for line in (artifacts / "retries.tsv").read_text().splitlines()
    ] == [
        ["2", "0"],
        ["3", "0"],
    ]


def test_without_retries_a_failure_runs_once(tmp_path: Path, fake: FakeSuite) -> None:
    selection = parse_selection(run=["rsend/rsend_002_flaky"])

    proc, disk = run_hook(tmp_path, fake, selection)

    assert proc.returncode == 0, proc.stderr
    judged = judge("debian13", bring_home(disk, tmp_path), selection, FACTS)
    [test] = judged.outcome.tests
    assert test.attempts == ("FAIL",)
    assert len(fake.runfiles_run()) == 1


def test_a_run_cut_off_by_the_timeout_is_not_retried(tmp_path: Path, fake: FakeSuite) -> None:
    selection = parse_selection(run=["atime/atime_001_pos"])

    proc, disk = run_hook(
        tmp_path, fake, selection, timeout=3, retries=3, extra_env={"FAKE_ZTS_HANG": "1"}
    )

    assert proc.returncode == 0, proc.stderr
    assert len(fake.runfiles_run()) == 1
    assert not (bring_home(disk, tmp_path) / "retries.tsv").exists()


def test_a_failing_recipe_reruns_and_every_exit_status_is_recorded(
    tmp_path: Path, fake: FakeSuite
) -> None:
    marker = tmp_path / "marker"
    flaky = tmp_path / "flaky.sh"
    flaky.write_text(
        f"#!/usr/bin/env bash\nif [[ -e {marker} ]]; then echo second; exit 0; fi\n"
        f"touch {marker}\necho first\nexit 1\n"
    )
    broken = tmp_path / "broken.sh"
    broken.write_text("echo broken\nexit 2\n")
    good = tmp_path / "good.sh"
    good.write_text("exit 0\n")
    selection = parse_selection(recipe=[str(flaky), str(broken), str(good)])

    proc, disk = run_hook(tmp_path, fake, selection, retries=2)

    assert proc.returncode == 0, proc.stderr
    artifacts = bring_home(disk, tmp_path)
    rows = [line.split("\t") for line in (artifacts / "recipes.tsv").read_text().splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("flaky", "1", "1"),
        ("flaky", "0", "2"),
        ("broken", "2", "1"),
        ("broken", "2", "2"),
        ("broken", "2", "3"),
        ("good", "0", "1"),
    ]
    judged = judge("debian13", artifacts, selection, FACTS)
    results = {t.name: (t.result, t.attempts, t.note) for t in judged.outcome.tests}
    assert results == {
        "recipes/flaky": ("PASS", ("FAIL", "PASS"), "exit status 1, then 0"),
        "recipes/broken": ("FAIL", ("FAIL", "FAIL", "FAIL"), "exit status 2, then 2, then 2"),
        "recipes/good": ("PASS", ("PASS",), None),
    }
    verdicts = judged.outcome.judgement.verdicts
    assert verdicts["recipes/flaky"].verdict is Verdict.FLAKY
    log = (artifacts / "recipes" / "flaky.log").read_text()
    assert log.index("first") < log.index("=== klab: attempt 2 ===") < log.index("second")
    assert "=== recipe flaky: exit 0 (attempt 2) ===" in (artifacts / "test.log").read_text()


def test_tests_the_host_resolved_are_sent_as_full_paths_with_what_is_absent(
    tmp_path: Path, fake: FakeSuite
) -> None:
    """A --group resolved on the host reaches the guest as tests, not as groups."""
    selection = parse_selection(group=["atime_002_neg,cli_root/zpool_create_002_pos"])
    tests = ("atime/atime_002_neg", "cli_root/zpool_create/zpool_create_002_pos")

    proc, disk = run_hook(tmp_path, fake, selection, tests=tests, absent=("raidz_expand",))

    assert proc.returncode == 0, proc.stderr
    artifacts = bring_home(disk, tmp_path)
    assert sections((artifacts / "selection.run").read_text()) == {
        "tests/functional/atime": ["atime_002_neg"],
        "tests/functional/cli_root/zpool_create": ["zpool_create_002_pos"],
    }
    judged = judge("debian13", artifacts, selection, FACTS)
    assert {t.name: t.result for t in judged.outcome.tests} == {
        "atime/atime_002_neg": "PASS",
        "cli_root/zpool_create/zpool_create_002_pos": "PASS",
        "raidz_expand": "ABSENT",
    }
