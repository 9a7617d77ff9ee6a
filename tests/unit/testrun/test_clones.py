"""`--clones K` without a VM: the split into per-clone inputs, the merge of K judged parts,
the crashed piece and its resume (testrun/clones.py), on the real Debian 13 quick run.

The parts are judged from real artifacts directories: the committed 2.3.9 console reduced
to each part's tests (shard_runs.py), so the merge is checked against the judgement of the
whole run, not against numbers written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.testrun.clones import (
    GUEST,
    Resume,
    crashed_piece,
    merge_pieces,
    part_tests,
    piece_dir,
    unrun,
)
from imagefactory.testrun.collect import Judged, Judging, judge
from imagefactory.testrun.crash import ConsoleReading, read_console
from imagefactory.testrun.guest import write_inputs
from imagefactory.testrun.outcome import DistroStatus
from imagefactory.testrun.resolve import DistroTests
from imagefactory.testrun.selection import Selection
from tests.unit.testrun.shard_runs import DISTRO, FACTS, SELECTION, RealRun, shard_keys

CONSOLE = Path(__file__).parents[2] / "fixtures" / "consoles" / "debian13-quick-sysrq-panic.log"


@pytest.fixture(scope="module")
def real() -> RealRun:
    return RealRun.load()


def test_each_clone_gets_whole_sections_and_every_test_once(real: RealRun, tmp_path: Path) -> None:
    split = real.split(3)
    parts = part_tests(split)
    sent = []
    for k, tests in enumerate(parts, 1):
        write_inputs(SELECTION, tmp_path / f"clone-{k}", tests=tests.tests, absent=tests.absent)
        sent.append((tmp_path / f"clone-{k}" / "tests.txt").read_text().split())
    every = [t for names in sent for t in names]
    assert sorted(every) == sorted(real.inventory.tests)  # each test exactly once
    section_of = {t: s.name for s in split.sections for t in s.tests}
    owners: dict[str, set[int]] = {}
    for k, names in enumerate(sent):
        for name in names:
            owners.setdefault(section_of[name], set()).add(k)
    assert all(len(k) == 1 for k in owners.values())  # no section in two clones
    assert len(parts) == 3


def test_k_parts_merge_into_the_outcome_of_the_whole_run(real: RealRun, tmp_path: Path) -> None:
    split = real.split(3)
    base = tmp_path / DISTRO
    pieces = []
    for k in range(1, len(split.assignment.parts) + 1):
        artifacts = piece_dir(base, k, 3, 1)
        artifacts.mkdir(parents=True)
        keep = shard_keys(real, split, k)
        (artifacts / "test.log").write_text(real.console(keep), encoding="utf-8")
        selected = sorted(k2 for k2 in keep if not k2.endswith(("/setup", "/cleanup")))
        (artifacts / "selection.json").write_text(json.dumps({"selected": selected, "absent": []}))
        judged = judge(DISTRO, artifacts, SELECTION, FACTS, judging=Judging(None, "tcg"))
        pieces.append((f"clone {k}/3", artifacts, judged))

    merged = merge_pieces(DISTRO, pieces, base)

    whole = base.parent / "whole"
    whole.mkdir()
    keys = {t.key for t in real.parsed.tests}
    (whole / "test.log").write_text(real.console(keys), encoding="utf-8")
    alone = judge(DISTRO, whole, SELECTION, FACTS, judging=Judging(None, "tcg")).outcome
    outcome = merged.outcome
    assert {t.key: t.result for t in outcome.tests} == {t.key: t.result for t in alone.tests}
    assert outcome.summary == alone.summary
    assert outcome.status is alone.status
    assert outcome.artifacts_dir == str(base)
    assert all(p.split("/", 1)[0].startswith("clone-") for p in merged.log_paths.values())


def test_a_single_piece_is_left_as_it_is(tmp_path: Path) -> None:
    assert piece_dir(tmp_path, 1, 1, 1) == tmp_path
    assert piece_dir(tmp_path, 1, 1, 2) == tmp_path / "boot-2"
    assert piece_dir(tmp_path, 2, 3, 3) == tmp_path / "clone-2" / "boot-3"


def test_a_crashed_boot_keeps_its_finished_tests_and_resumes_after_the_running_one(
    tmp_path: Path,
) -> None:
    reading = read_console(CONSOLE.read_text(encoding="utf-8"))
    wanted = tuple(reading.order)
    judged, resume = crashed_piece(
        DISTRO,
        tmp_path,
        reading,
        "the guest crashed: Kernel panic - not syncing: sysrq triggered crash",
        tests=DistroTests(wanted),
        selection=SELECTION,
        facts=FACTS,
        judging=Judging(None, "tcg"),
    )

    outcome = judged.outcome
    crashed = [t for t in outcome.tests if t.result == "CRASHED"]
    assert [t.key for t in crashed] == ["cli_root/zfs_create/zfs_create_encrypted"]
    note = (crashed[0].note or "").splitlines()
    assert note[0] == "the guest crashed: Kernel panic - not syncing: sysrq triggered crash"
    assert note[-1].endswith("---[ end Kernel panic - not syncing: sysrq triggered crash ]---")
    assert len(note) <= 13  # the console's last lines; crash.txt has the whole excerpt
    assert outcome.verdict_of(crashed[0]).verdict.value == "crashed"
    assert outcome.status is DistroStatus.FAILED
    assert "cli_root/zfs_create/zfs_create_001_pos" in {t.key for t in outcome.tests}
    assert judged.log_paths == {"cli_root/zfs_create/zfs_create_encrypted": "crash.txt"}
    assert "sysrq_handle_crash" in (tmp_path / "crash.txt").read_text()
    assert resume is not None and resume.tests is not None and resume.tests.tests is not None
    left = resume.tests.tests
    assert left[0] == "cli_root/zfs_create/zfs_create_crypt_combos"
    assert not set(left) & ({t.name for t in outcome.tests})
    killed = unrun(resume, 2)
    assert {t.result for t in killed} == {"KILLED"} and len(killed) == len(left)


def test_a_crash_before_any_test_is_the_guests_and_reruns_everything(tmp_path: Path) -> None:
    reading = read_console("[    2.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    judged, resume = crashed_piece(
        DISTRO,
        tmp_path,
        reading,
        "the guest crashed",
        tests=DistroTests(("a/one", "a/two")),
        selection=SELECTION,
        facts=FACTS,
        judging=Judging(),
    )
    assert [(t.key, t.result) for t in judged.outcome.tests] == [(GUEST, "CRASHED")]
    assert resume is not None and resume.tests is not None
    assert resume.tests.tests == ("a/one", "a/two")


def _recipes_crashed(
    run_dir: Path, reading: ConsoleReading, selection: Selection
) -> tuple[Judged, Resume | None]:
    """A recipe piece whose guest crashed, judged from its console."""
    return crashed_piece(
        DISTRO,
        run_dir,
        reading,
        "the guest crashed",
        tests=DistroTests(None),
        selection=selection,
        facts=FACTS,
        judging=Judging(),
    )


def test_recipes_resume_after_the_recipe_that_crashed(tmp_path: Path) -> None:
    selection = Selection("recipe", ("one", "two", "three"))
    reading = read_console(
        "50-klab-test.sh| 50-klab-test.sh: recipe one exited 1 (attempt 1)\n"
        "50-klab-test.sh| + echo c\n"
        "[   40.1] sysrq: Trigger a crash\n"
        "[   40.1] Kernel panic - not syncing: sysrq triggered crash\n"
    )
    judged, resume = _recipes_crashed(tmp_path, reading, selection)
    results = {t.key: t.result for t in judged.outcome.tests}
    assert results == {"recipes/one": "FAIL", "recipes/two": "CRASHED"}
    assert resume is not None and resume.selection.items == ("three",)
    assert "+ echo c" in (tmp_path / "crash.txt").read_text()
    assert reading.running_output == "+ echo c"  # only what the running recipe printed


def test_a_crash_during_a_recipes_retry_is_that_recipes(tmp_path: Path) -> None:
    selection = Selection("recipe", ("one", "two"))
    reading = read_console(
        "50-klab-test.sh| 50-klab-test.sh: recipe one, attempt 1: /x/one (at most 9s)\n"
        "50-klab-test.sh| 50-klab-test.sh: recipe one exited 1 (attempt 1)\n"
        "50-klab-test.sh| 50-klab-test.sh: recipe one, attempt 2: /x/one (at most 8s)\n"
        "[   40.1] Kernel panic - not syncing: sysrq triggered crash\n"
    )
    judged, resume = _recipes_crashed(tmp_path, reading, selection)
    assert {t.key: t.result for t in judged.outcome.tests} == {"recipes/one": "CRASHED"}
    assert resume is not None and resume.selection.items == ("two",)
