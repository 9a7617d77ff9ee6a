"""`--clones K` and runs that survive a guest crash, on a real files store, without a VM.

Real parts: a files store with a published golden and its suite inventory, real clones,
seeds, results disks, history and run files.  Only QEMU is replaced, by a script that
writes to the serial console file QEMU would have written (found in its own argv) what a
guest prints -- the runner's begin line, the selector's `klab-order:` lines, result lines,
then a kernel panic -- and then hangs like a dead guest.  What a real panic looks like in a
real clone is the e2e test (tests/e2e/test_ztest_stage.py: sysrq).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.spec.loader import load_distro
from imagefactory.store.files import FileStore
from imagefactory.testrun.history import History
from imagefactory.testrun.outcome import DistroStatus
from imagefactory.testrun.resolve import plan_distros
from imagefactory.testrun.selection import parse_selection
from imagefactory.testrun.stage import Stage, run_stage
from imagefactory.vm.payload import unpack
from tests.integration.testrun.klab_cli import klab
from tests.integration.testrun.test_stage_without_boot import (
    LEAF,
    fake_qemu,
    options,
    publish_golden,
    suite_inventory,
)

ATIME = ["atime/atime_001_pos", "atime/atime_002_neg"]
ZIL = ["zil/zil_001", "zil/zil_002"]
RESULT = (
    "50-klab-test.sh| [2026-12-02T21:26:51.393735] Test: /usr/share/zfs/zfs-tests/tests/"
    "functional/{} (run as root) [00:04] [PASS]"
)
BEGIN = 'imagefactory-status: {"event":"begin","hooks":1,"uptime":70.1}'


@pytest.fixture
def store(tmp_path: Path, state: Path) -> FileStore:
    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path, inventory=suite_inventory(ATIME + ZIL, state))
    return store


def guest_script(tmp_path: Path, boots: list[list[str]]) -> Path:
    """A QEMU that prints boot n's lines on its console file, then hangs (a dead guest)."""
    scripts = tmp_path / "boots"
    scripts.mkdir()
    for n, lines in enumerate(boots, 1):
        (scripts / str(n)).write_text("\n".join([BEGIN, *lines]) + "\n")
    count = tmp_path / "boots.count"
    body = f"""
for a in "$@"; do case $a in file,id=*console,path=*) console=${{a#*path=}};; esac; done
exec 9>>{count}.lock; flock 9  # clones boot at once: one boot number each
n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}
flock -u 9
cat {scripts}/$n >> "$console"
exec sleep 600
"""
    return fake_qemu(tmp_path / "bin", body)


def order(section: str, tests: list[str]) -> str:
    return f"50-klab-test.sh| klab-order: tests/functional/{section} {' '.join(tests)}"


PANIC = "[   81.203941] Kernel panic - not syncing: sysrq triggered crash"
TRACE = "[   81.204011] CPU: 0 UID: 0 PID: 1234 Comm: bash Not tainted 6.12.57+deb13-amd64"


def test_a_crash_is_a_crashed_test_and_the_rest_goes_on_in_a_fresh_clone(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = guest_script(
        tmp_path,
        [
            [order("atime", ATIME), order("zil", ZIL), RESULT.format(ATIME[0]), PANIC, TRACE],
            [order("zil", ZIL), RESULT.format(ZIL[0]), "[   12.5] BUG: soft lockup - CPU#0"],
        ],
    )
    specs = [load_distro("debian13", lineage="ztest")]
    result = run_stage(
        specs,
        parse_selection(run=ATIME + ZIL),
        options(tmp_path, qemu, crash_grace=0.5, clones=1),
        store=store,
    )

    [outcome] = result.outcomes
    verdicts = {t.key: outcome.verdict_of(t).verdict.value for t in outcome.tests}
    assert verdicts == {
        ATIME[0]: "pass",
        ATIME[1]: "crashed",
        ZIL[0]: "pass",
        ZIL[1]: "crashed",
    }
    assert outcome.status is DistroStatus.FAILED
    assert result.exit_status == 1
    crashed = next(t for t in outcome.tests if t.key == ATIME[1])
    assert "Kernel panic - not syncing: sysrq triggered crash" in (crashed.note or "")
    distro = result.run_dir / "debian13"
    assert (tmp_path / "boots.count").read_text().strip() == "2"  # two boots, no more
    assert PANIC in (distro / "console.log").read_text()
    assert "sysrq triggered crash" in (distro / "crash.txt").read_text()
    assert "running: atime/atime_002_neg" in (distro / "crash.txt").read_text()
    assert "soft lockup" in (distro / "boot-2" / "crash.txt").read_text()
    assert store.list_clones() == []  # both clones destroyed
    with History.open(tmp_path / "history.sqlite", readonly=True) as history:
        rows = history.conn.execute(
            "SELECT test, log_path FROM test_results WHERE verdict = 'crashed' ORDER BY test"
        ).fetchall()
    assert [tuple(r) for r in rows] == [(ATIME[1], "crash.txt"), (ZIL[1], "boot-2/crash.txt")]


def test_crash_retries_used_up_leaves_the_rest_killed_never_passed(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = guest_script(tmp_path, [[order("atime", ATIME), order("zil", ZIL), PANIC]])
    specs = [load_distro("debian13", lineage="ztest")]
    result = run_stage(
        specs,
        parse_selection(run=ATIME + ZIL),
        options(tmp_path, qemu, crash_grace=0.5, crash_retries=0, clones=1),
        store=store,
    )

    [outcome] = result.outcomes
    results = {t.key: t.result for t in outcome.tests}
    assert results == {ATIME[0]: "CRASHED", ATIME[1]: "KILLED", **dict.fromkeys(ZIL, "KILLED")}
    assert "--crash-retries 0 used up" in (outcome.message or "")
    assert result.exit_status == 1
    assert (tmp_path / "boots.count").read_text().strip() == "1"


def test_a_clone_without_a_finished_test_for_the_hang_timeout_is_stopped(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = guest_script(tmp_path, [[order("atime", ATIME), RESULT.format(ATIME[0])]] * 2)
    specs = [load_distro("debian13", lineage="ztest")]
    result = run_stage(
        specs,
        parse_selection(run=ATIME),
        options(tmp_path, qemu, hang_timeout=3.0, crash_retries=1, clones=1),
        store=store,
    )

    [outcome] = result.outcomes
    hung = next(t for t in outcome.tests if t.key == ATIME[1])
    assert hung.result == "CRASHED"
    assert "no test finished for 3s (--hang-timeout)" in (hung.note or "")
    assert (tmp_path / "boots.count").read_text().strip() == "1"  # nothing left to resume


def test_two_clones_get_one_part_each_and_merge_into_one_column(
    tmp_path: Path, store: FileStore
) -> None:
    qemu = guest_script(
        tmp_path,
        [[order("atime", ATIME), PANIC], [order("zil", ZIL), PANIC]],
    )
    specs = [load_distro("debian13", lineage="ztest")]
    selection = parse_selection(run=ATIME + ZIL)
    result = run_stage(
        specs,
        selection,
        options(tmp_path, qemu, crash_grace=0.5, crash_retries=0, clones=2),
        store=store,
    )

    [outcome] = result.outcomes  # one column for the distro
    assert sorted(t.key for t in outcome.tests) == sorted(ATIME + ZIL)
    distro = result.run_dir / "debian13"
    assert {p.name for p in distro.iterdir() if p.is_dir()} >= {"clone-1", "clone-2"}
    assert (distro / "clone-1" / "console.log").is_file()
    assert (distro / "clone-2" / "console.log").is_file()
    crashed = sorted(t.key for t in outcome.tests if t.result == "CRASHED")
    assert crashed in ([ATIME[0], ZIL[0]], [ZIL[0], ATIME[0]])
    assert "clone 1/2" in (outcome.message or "") and "clone 2/2" in (outcome.message or "")
    assert store.list_clones() == []


def test_each_clone_part_reaches_its_guest_as_its_own_test_list(
    tmp_path: Path, store: FileStore
) -> None:
    specs = [load_distro("debian13", lineage="ztest")]
    selection = parse_selection(run=ATIME + ZIL)
    plan = plan_distros(specs, selection, store)
    stage = Stage(specs, selection, options(tmp_path, Path("qemu"), clones=2), store, plan=plan)
    budget = stage.size()
    assert budget.clones == 2
    assert stage.cpus == budget.share(2)  # two clones share the host's vCPUs
    assert stage.cpus is not None and stage.cpus >= 1
    parts = stage.parts["debian13"]
    clone = store.clone(LEAF)
    try:
        sent = [
            unpack(
                stage.prepare(specs[0], clone, tmp_path / f"w{i}", tests=p, cpus=stage.cpus)
                .plan.hooks[0]
                .content
            )["tests.txt"]
            .decode()
            .split()
            for i, p in enumerate(parts)
        ]
    finally:
        store.destroy_clone(clone)
    assert sorted(map(tuple, sent)) == [tuple(ATIME), tuple(ZIL)]  # sections whole, once each


def test_dry_run_shows_each_clone_and_each_shards_clones(tmp_path: Path, store: FileStore) -> None:
    base = ["test", "debian13", "--run", ",".join(ATIME + ZIL), "--store", f"file:{store.root}"]
    done = klab(tmp_path, *base, "--clones", "2", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "2 clone(s)" in done.stdout
    assert "  clone 1:" in done.stdout and "  clone 2:" in done.stdout

    done = klab(tmp_path, *base, "--clones", "2", "--shard", "1/1", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "part 1 (this shard)" in done.stdout
    assert "debian13 shard 1: 4 test(s) in 2 section(s), 2 clone(s)" in done.stdout
    assert not (tmp_path / "runs").exists()
    assert store.list_clones() == []


@pytest.mark.parametrize(
    ("flag", "value"), [("--clones", "0"), ("--clones", "x"), ("--crash-retries", "-1")]
)
def test_bad_clone_values_exit_2(tmp_path: Path, flag: str, value: str) -> None:
    done = klab(tmp_path, "test", "debian13", "--suite", "quick", flag, value)
    assert done.returncode == 2
    assert flag in done.stderr
    assert "Traceback" not in done.stderr


def test_run_json_and_matrix_are_one_column(tmp_path: Path, store: FileStore) -> None:
    qemu = guest_script(tmp_path, [[order("atime", ATIME), PANIC], [order("zil", ZIL), PANIC]])
    specs = [load_distro("debian13", lineage="ztest")]
    result = run_stage(
        specs,
        parse_selection(run=ATIME + ZIL),
        options(tmp_path, qemu, crash_grace=0.5, crash_retries=0, clones=2),
        store=store,
    )
    data = json.loads((result.run_dir / "run.json").read_text())
    assert [d["distro"] for d in data["distros"]] == ["debian13"]
