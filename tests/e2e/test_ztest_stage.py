"""The test stage end to end: real clones of the real Debian ztest golden under TCG.

Each case runs `klab` as a user would (a subprocess, the golden's store from the fixture's
environment, a private history and run directory) and then checks what it left: artifacts,
history rows, and nothing else -- no clone, no QEMU process, no seed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.store.select import open_store
from imagefactory.testrun.baseline import baselines_dir
from imagefactory.testrun.results import parse_file
from tests.fixtures.ztest_golden import ZtestGolden
from tests.integration.metrics.servers import process, prometheus, wait_for

pytestmark = [pytest.mark.vm, pytest.mark.root, pytest.mark.timeout(7200)]

KLAB = (sys.executable, "-m", "imagefactory", "--log-format", "json")
ZPOOL_CREATE = "cli_root/zpool_create/zpool_create_001_pos"
SHORT_ZPOOL_CREATE = "cli_root/zpool_create_001_pos"
"""The documented short form: resolved on the host against the golden's suite inventory."""


def klab(
    golden: ZtestGolden, tmp_path: Path, *args: str, timeout: float = 5400
) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "state"
    inventories = state / "inventories"
    if not inventories.exists():
        # One state directory holds the history and the inventories: each test gets its own
        # history, and the golden's inventory the build kept in the fixture's state.
        state.mkdir(parents=True, exist_ok=True)
        inventories.symlink_to(golden.state / "inventories")
    env = {**golden.env, "IMAGEFACTORY_STATE": str(state), "KLAB_LOG_DIR": str(tmp_path / "runs")}
    return subprocess.run(
        [*KLAB, *args], env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def qemus_named(name_part: str) -> list[int]:
    """QEMU processes whose VM name contains `name_part` (ours are `<leaf>-test-<clone>`)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and any(name_part.encode() in a for a in argv):
            found.append(int(proc.name))
    return found


def only_run_dir(tmp_path: Path) -> Path:
    [run] = list((tmp_path / "runs").iterdir())
    return run


def clones_made(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The clones a `klab` run made, from its JSON log (other sessions may clone too)."""
    names = []
    for line in proc.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "test.cloned":
            names.append(str(event["clone"]))
    return names


def assert_nothing_left(
    golden: ZtestGolden, run_dir: Path, proc: subprocess.CompletedProcess[str]
) -> None:
    made = clones_made(proc)
    assert made, "the run's log names no clone"
    store = open_store(golden.store)
    alive = {c.name for c in store.list_clones(golden.leaf)}
    assert not alive & set(made), "a clone survived the run"
    for name in made:
        clone_id = name.rsplit(".clone-", 1)[-1].removesuffix(".qcow2")
        assert qemus_named(f"-test-{clone_id}") == [], "a test QEMU survived the run"
    assert not list(run_dir.rglob(".work")), "the seed/work directory survived"
    assert not list(run_dir.rglob("seed.iso")), "a seed survived"
    assert not list(run_dir.rglob("results.img")), "the results disk survived"


def test_an_unknown_test_exits_2_with_suggestions_and_boots_nothing(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    proc = klab(debian_ztest_golden, tmp_path, "test", "debian13", "--run", "zpool_create_001_po")

    assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
    assert "did you mean" in proc.stderr and "zpool_create_001_pos" in proc.stderr
    assert clones_made(proc) == []
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    nothing = klab(debian_ztest_golden, tmp_path, "test", "debian13", "--run", "no_such_test")
    assert nothing.returncode == 2, nothing.stderr[-3000:]
    assert clones_made(nothing) == []


def test_one_real_test_passes_and_is_in_the_history(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    proc = klab(debian_ztest_golden, tmp_path, "test", "debian13", "--run", SHORT_ZPOOL_CREATE)

    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert "no suite inventory" not in proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith(ZPOOL_CREATE))
    assert "✅" in row
    assert "debian13: " in proc.stdout and " 0 failed" in proc.stdout
    run_dir = only_run_dir(tmp_path)
    artifacts = run_dir / "debian13"
    assert json.loads((artifacts / "selection.json").read_text())["selected"] == [ZPOOL_CREATE]
    parsed = parse_file(artifacts / "test.log")
    assert parsed.complete
    assert {t.name: t.result for t in parsed.tests}[ZPOOL_CREATE] == "PASS"
    for name in ("console.log", "dmesg.txt", "zpool-status.txt", "bpftrace/zio.txt",
                 "bpftrace/txg.txt", "golden.json", "selection.run"):  # fmt: skip
        assert (artifacts / name).is_file(), name
    assert "Attaching" in (artifacts / "bpftrace" / "txg.txt").read_text()
    assert (artifacts / "test_results").is_dir()
    for name in ("matrix.txt", "summary.md", "junit.xml"):
        assert (run_dir / name).is_file()
    run = json.loads((run_dir / "run.json").read_text())
    [debian] = [d for d in run["distros"] if d["distro"] == "debian13"]
    assert debian["status"] == "passed", debian

    history = klab(debian_ztest_golden, tmp_path, "history", "--test", ZPOOL_CREATE, "--json")
    rows = json.loads(history.stdout)
    assert [(r["distro"], r["result"]) for r in rows] == [("debian13", "PASS")]
    assert rows[0]["zfs_version"].startswith("2.3.")
    assert rows[0]["log_path"] and (artifacts / rows[0]["log_path"]).is_dir()
    assert_nothing_left(debian_ztest_golden, run_dir, proc)
    see_it(debian_ztest_golden, tmp_path, run_dir, artifacts)


def see_it(golden: ZtestGolden, tmp_path: Path, run_dir: Path, artifacts: Path) -> None:
    """Issue 15 on the same real run, no extra boot: the bpftrace JSON of every script the
    run asked for, report.html, and the run's metrics scraped by a real Prometheus."""
    traces = sorted(p.stem for p in (artifacts / "bpftrace").glob("*.json"))
    assert set(traces) == {"arc", "spl", "txg", "zio"}, traces  # the default: all four
    for name in traces:
        data = json.loads((artifacts / "bpftrace" / f"{name}.json").read_text())
        assert data["schema"] == "klab-bpftrace/1", data
    zio = json.loads((artifacts / "bpftrace" / "zio.json").read_text())
    assert zio.get("attached") is not False, zio
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert ZPOOL_CREATE in report and "<script" in report
    state = tmp_path / "state"
    history = state / "history.sqlite"
    assert history.is_file(), sorted(p.name for p in state.iterdir())
    argv = [*KLAB, "metrics", "serve", "--listen", "127.0.0.1:0", "--history", str(history),
            "--store", golden.store]  # fmt: skip
    env = {**golden.env, "IMAGEFACTORY_STATE": str(state)}
    with process(argv, tmp_path / "exporter.log", env) as exporter:
        addr = state / "metrics.addr"
        wait_for("metrics.addr", lambda: exporter.poll() is None and addr.is_file())
        with prometheus(tmp_path, addr.read_text(encoding="utf-8").strip()) as prom:
            wait_for(
                "two scrapes",
                lambda: any(float(r["value"][1]) >= 2
                            for r in prom.query("count_over_time(klab_history_up[5m])")),
            )  # fmt: skip
            passed = prom.query('klab_run_tests{distro="debian13",verdict="pass"}')
            assert passed and float(passed[0]["value"][1]) >= 1, passed
            assert prom.query("klab_golden_age_seconds"), "no golden series"


FLAKY_ONCE = """#!/usr/bin/env bash
# Fails on its first attempt, passes on the retry: the marker cannot exist in a fresh clone.
marker=/var/tmp/klab-e2e-flaky-once
if [[ -e $marker ]]; then echo 'flaky-once: PASS on retry'; exit 0; fi
touch "$marker"
echo 'flaky-once: FAIL on the first attempt' >&2
exit 1
"""

BASELINE = """- test: recipes/known-failure
  result: FAIL
  kind: known
  reason: e2e known failure, covered on purpose
"""


def test_recipes_flaky_expected_and_keep_keeps_the_clone_until_gc(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    """One boot judges three verdicts: pass, flaky (fails, then passes on its retry) and
    expected (a failure a baseline entry covers) -- exit 0, the reason in summary.md."""
    good = tmp_path / "zpool-works.sh"
    good.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        "truncate -s 256M /var/tmp/r.img\nzpool create -f rtank /var/tmp/r.img\n"
        "zpool destroy rtank\nrm /var/tmp/r.img\necho 'zpool-works: PASS'\n"
    )
    flaky = tmp_path / "flaky-once.sh"
    flaky.write_text(FLAKY_ONCE)
    known = tmp_path / "known-failure.sh"
    known.write_text("#!/usr/bin/env bash\necho 'known-failure: FAIL: on purpose' >&2\nexit 1\n")
    baseline = tmp_path / "e2e-baseline.yaml"
    baseline.write_text(BASELINE)

    proc = klab(
        debian_ztest_golden, tmp_path, "test", "debian13",
        "--recipe", str(good), "--recipe", str(flaky), "--recipe", str(known),
        "--retries", "1", "--baseline", str(baselines_dir()), "--baseline", str(baseline),
        "--keep", "always",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    run_dir = only_run_dir(tmp_path)
    artifacts = run_dir / "debian13"
    # recipes.tsv: name, exit status, seconds, attempt.
    rows = [line.split("\t") for line in (artifacts / "recipes.tsv").read_text().splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("zpool-works", "0", "1"),
        ("flaky-once", "1", "1"), ("flaky-once", "0", "2"),
        ("known-failure", "1", "1"), ("known-failure", "1", "2"),
    ], rows  # fmt: skip
    assert "=== klab: attempt 2 ===" in (artifacts / "recipes" / "flaky-once.log").read_text()
    run = json.loads((run_dir / "run.json").read_text())
    [debian] = [d for d in run["distros"] if d["distro"] == "debian13"]
    verdicts = {v["name"]: v for v in debian["tests"]}
    assert verdicts["recipes/zpool-works"]["verdict"] == "pass"
    assert verdicts["recipes/flaky-once"]["verdict"] == "flaky"
    assert verdicts["recipes/flaky-once"]["attempts"] == ["FAIL", "PASS"]
    assert verdicts["recipes/known-failure"]["verdict"] == "expected"
    assert "e2e known failure, covered on purpose" in (run_dir / "summary.md").read_text()
    junit = (run_dir / "junit.xml").read_text()
    assert "<flakyFailure" in junit
    assert "kept the clone of debian13" in proc.stdout
    assert (artifacts / "kept-clone.txt").is_file()
    store = open_store(debian_ztest_golden.store)
    [made] = clones_made(proc)
    [kept] = [c for c in store.list_clones(debian_ztest_golden.leaf) if c.name == made]

    # Nothing failed unexpectedly: --rerun-failed has nothing to boot.
    rerun = klab(debian_ztest_golden, tmp_path, "test", "debian13", "--rerun-failed")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr[-3000:]
    assert clones_made(rerun) == []

    gc = klab(debian_ztest_golden, tmp_path, "gc")
    assert gc.returncode == 0, gc.stderr[-3000:]
    assert f"removed forgotten test clone {kept.name}" in gc.stdout
    assert_nothing_left(debian_ztest_golden, run_dir, proc)


def test_rc_rebuilds_gates_and_reports_what_cannot_be_built(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    """The release gate on this host: Debian is rebuilt (from the cached bootstrap image) and
    gated; CentOS cannot be built (its vendor image is out of reach: the site mirror given
    refuses connections), so it is "not built", an infrastructure error, not a crash.

    The gate runs one real test rather than the quick suite (~20 min under TCG), which
    `make rc DISTROS=debian13` runs by hand; rebuild, gating and reports are the same code."""
    store = open_store(debian_ztest_golden.store)
    before = store.get_golden(debian_ztest_golden.leaf)
    assert before is not None

    proc = klab(
        debian_ztest_golden, tmp_path, "rc", "--distros", "debian13,centos9",
        "--source", "bootstrap", "--mirror", "http://127.0.0.1:9/", "--run", ZPOOL_CREATE,
        timeout=7000,
    )  # fmt: skip

    run_dir = only_run_dir(tmp_path)
    builds = {b["distro"]: b for b in json.loads((run_dir / "builds.json").read_text())}
    assert builds["debian13"]["ok"], builds
    assert not builds["centos9"]["ok"]
    after = store.get_golden(debian_ztest_golden.leaf)
    assert after is not None
    assert after.provenance.build_id == builds["debian13"]["build_id"]
    assert after.provenance.build_id != before.provenance.build_id
    run = json.loads((run_dir / "run.json").read_text())
    statuses = {d["distro"]: d for d in run["distros"]}
    assert statuses["centos9"]["status"] == "not-built"
    debian = statuses["debian13"]
    assert debian["golden_build_id"] == after.provenance.build_id
    # The test, and its directory's setup and cleanup as zfs-tests.sh runs them.
    assert debian["counts"]["failed"] == 0 and debian["counts"]["passed"] >= 1, debian
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "centos9: not built: the rebuild failed" in proc.stdout
    junit = (run_dir / "junit.xml").read_text()
    assert '<testsuite name="debian13"' in junit and '<testsuite name="centos9"' in junit
    assert "| centos9 | not-built |" in (run_dir / "summary.md").read_text()
    [row] = matrix_rows(run_dir, ZPOOL_CREATE)
    assert "✅" in row, row
    assert_nothing_left(debian_ztest_golden, run_dir, proc)


def matrix_rows(run_dir: Path, test: str) -> list[str]:
    """The matrix's rows of one test: the summary under it names the selection, which may
    contain the test's name too."""
    text = (run_dir / "matrix.txt").read_text()
    return [r for r in text.splitlines() if r.split("  ")[0].strip() == test]


PANIC_RECIPE = """#!/usr/bin/env bash
# Crashes the guest kernel on purpose: the run must go on in a fresh clone.
echo 'panic-kernel: crashing the kernel through sysrq'
sleep 2  # the serial line drains first: a panic drops what the tty has not sent yet
echo 1 > /proc/sys/kernel/sysrq
echo c > /proc/sysrq-trigger
sleep 60
echo 'panic-kernel: still alive (the crash did not happen)'
"""


def test_a_guest_crash_is_reported_and_the_rest_runs_in_a_fresh_clone(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    """A recipe panics the kernel (sysrq 'c'); the recipes after it run in a second clone.

    Two boots; the crashed recipe is `crashed` with the console's panic lines, the others
    pass; exit 1 (a crash is a failure); the first boot's console and crash.txt are kept
    in debian13/, the second boot's artifacts in debian13/boot-2/; no clone is left.  The
    second clone also runs two shipped recipes by name (issue 17: zinject corruption, a send
    over loopback with netem's 5 % loss) -- real ZFS, no boot of their own."""
    panic = tmp_path / "panic-kernel.sh"
    panic.write_text(PANIC_RECIPE)
    after = tmp_path / "after-crash.sh"
    after.write_text("#!/usr/bin/env bash\necho 'after-crash: PASS'\n")

    proc = klab(
        debian_ztest_golden, tmp_path, "test", "debian13",
        "--recipe", str(panic), "--recipe", str(after),
        "--recipe", "pool-corruption-block", "--recipe", "replication-chaos",
    )  # fmt: skip

    assert proc.returncode == 1, proc.stdout + proc.stderr[-6000:]
    assert len(clones_made(proc)) == 2, "one clone crashed, one fresh clone for the rest"
    run_dir = only_run_dir(tmp_path)
    artifacts = run_dir / "debian13"
    assert "Kernel panic - not syncing: sysrq triggered crash" in (
        artifacts / "console.log"
    ).read_text(errors="replace")
    crash = (artifacts / "crash.txt").read_text()
    assert "running: recipes/panic-kernel" in crash
    assert "sysrq triggered crash" in crash
    assert "panic-kernel: crashing the kernel through sysrq" in crash  # the recipe's own output
    rows = (artifacts / "boot-2" / "recipes.tsv").read_text().splitlines()
    assert [r.split("\t")[:2] for r in rows] == [
        ["after-crash", "0"],
        ["pool-corruption-block", "0"],
        ["replication-chaos", "0"],
    ], rows
    logs = artifacts / "boot-2" / "recipes"
    corruption = (logs / "pool-corruption-block.log").read_text()
    assert "zpool status -v named the error" in corruption, corruption[-3000:]
    chaos = (logs / "replication-chaos.log").read_text()
    assert re.search(r"5% loss: identical \(\d+ segments retransmitted\)", chaos), chaos[-3000:]
    run = json.loads((run_dir / "run.json").read_text())
    [debian] = [d for d in run["distros"] if d["distro"] == "debian13"]
    verdicts = {v["name"]: v for v in debian["tests"]}
    assert verdicts["recipes/panic-kernel"]["verdict"] == "crashed"
    assert "sysrq triggered crash" in verdicts["recipes/panic-kernel"]["reason"]
    for name in ("after-crash", "pool-corruption-block", "replication-chaos"):
        assert verdicts[f"recipes/{name}"]["verdict"] == "pass", verdicts[f"recipes/{name}"]
    assert "after-crash: PASS" not in proc.stdout  # recipes' output stays in the artifacts
    [row] = matrix_rows(run_dir, "recipes/panic-kernel")
    assert "💥" in row or "crashed" in row, row
    history = klab(
        debian_ztest_golden, tmp_path, "history", "--test", "recipes/panic-kernel", "--json"
    )
    assert history.returncode == 0, history.stderr[-3000:]
    assert "crashed" in history.stdout.lower()
    assert_nothing_left(debian_ztest_golden, run_dir, proc)


def test_two_clones_run_their_parts_at_once_into_one_column(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    """--clones 2 over two runfile sections: each clone runs one (with its setup and
    cleanup), under debian13/clone-1 and clone-2; one column, both tests pass."""
    other = "cli_root/zfs_create/zfs_create_001_pos"
    proc = klab(
        debian_ztest_golden, tmp_path, "test", "debian13",
        "--run", f"{ZPOOL_CREATE},{other}", "--clones", "2",
    )  # fmt: skip

    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert len(clones_made(proc)) == 2
    run_dir = only_run_dir(tmp_path)
    logs = {k: parse_file(run_dir / "debian13" / f"clone-{k}" / "test.log") for k in (1, 2)}
    ran = sorted(t.name for p in logs.values() for t in p.tests if t.name in (ZPOOL_CREATE, other))
    assert ran == sorted([ZPOOL_CREATE, other])  # each test once, in one of the clones
    assert all(len({t.name for t in p.tests} & {ZPOOL_CREATE, other}) == 1 for p in logs.values())
    system = (run_dir / "debian13" / "clone-1" / "system.txt").read_text()
    share = min(2, max(1, (os.cpu_count() or 1) // 2))  # TCG: the host's cores over 2 VMs
    assert f"cpus: {share}" in system
    run = json.loads((run_dir / "run.json").read_text())
    [debian] = [d for d in run["distros"] if d["distro"] == "debian13"]
    verdicts = {v["name"]: v["verdict"] for v in debian["tests"]}
    assert verdicts[ZPOOL_CREATE] == "pass" and verdicts[other] == "pass"
    assert_nothing_left(debian_ztest_golden, run_dir, proc)
