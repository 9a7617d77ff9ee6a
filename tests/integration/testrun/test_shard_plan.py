"""`--shard i/N` and `--dry-run` on a real files store with a published golden and inventory.

No VM boots: the plan is checked (every test in exactly one shard, sections whole, the
same split whatever the machine), and a shard run whose QEMU cannot start still writes a
run.json that records the shard and the snapshot's digest.  The CLI's dry run prints the
parts, and bad `--shard` values are one-line usage errors (exit 2).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.spec.loader import load_distro
from imagefactory.store.files import FileStore
from imagefactory.testrun.durations import Durations, write_snapshot
from imagefactory.testrun.inventory import keep_inventory
from imagefactory.testrun.resolve import plan_distros
from imagefactory.testrun.selection import Selection, parse_selection
from imagefactory.testrun.shard import Shard, ShardSpec
from imagefactory.testrun.stage import run_stage
from tests.integration.testrun.klab_cli import klab
from tests.integration.testrun.test_stage_without_boot import fake_qemu, options, publish_golden

SECTIONS = {
    "tests/functional/atime": ["atime/atime_001_pos", "atime/atime_002_neg"],
    "tests/functional/atime:Linux": ["atime/atime_003_pos"],
    "tests/functional/rsend": [f"rsend/send_{i}" for i in range(6)],
    "tests/functional/zil": ["zil/zil_001", "zil/zil_002"],
    "tests/functional/cli_root/zpool_create": ["cli_root/zpool_create/zpool_create_001_pos"],
}
TIMES = {"rsend/send_0": 600.0, "rsend/send_1": 300.0, "zil/zil_001": 400.0}


def inventory_doc() -> bytes:
    tests = {
        test: {
            "on_disk": True,
            "listed": {"quick.run": {"section": section, "tags": ["functional"]}},
        }
        for section, names in SECTIONS.items()
        for test in names
    }
    return json.dumps({"format": 1, "suite_version": "2.3.9", "tests": tests}).encode()


@pytest.fixture
def store(tmp_path: Path, state: Path) -> FileStore:
    store = FileStore(tmp_path / "store")
    publish_golden(store, tmp_path, inventory=keep_inventory(inventory_doc(), state))
    return store


def sharded(index: int, count: int, durations: Durations | None = None) -> Selection:
    spec = ShardSpec(index, count)
    return Selection("suite", ("quick",), shard=Shard(spec, durations or Durations(TIMES)))


def test_every_test_in_exactly_one_shard_and_sections_whole(store: FileStore) -> None:
    specs = [load_distro("debian13", lineage="ztest")]
    parts = [plan_distros(specs, sharded(i, 3), store).for_distro("debian13") for i in (1, 2, 3)]
    tests = [set(p.tests or ()) for p in parts]
    everything = {t for names in SECTIONS.values() for t in names}
    assert set().union(*tests) == everything
    assert sum(len(t) for t in tests) == len(everything)
    for names in SECTIONS.values():
        assert sum(1 for t in tests if set(names) <= t) == 1  # each section in one shard
    # The 600 s and 300 s tests share the rsend section: it is one part on its own.
    assert any(t == set(SECTIONS["tests/functional/rsend"]) for t in tests)
    again = [plan_distros(specs, sharded(i, 3), store).for_distro("debian13") for i in (1, 2, 3)]
    assert again == parts


def test_more_shards_than_sections_is_a_usage_error(store: FileStore) -> None:
    specs = [load_distro("debian13", lineage="ztest")]
    with pytest.raises(UsageError, match="only 5 runfile section"):
        plan_distros(specs, sharded(1, 6), store)


def test_a_shard_run_records_its_shard_and_snapshot(tmp_path: Path, store: FileStore) -> None:
    qemu = fake_qemu(tmp_path / "bin", "echo 'fake qemu: cannot start' >&2; exit 1")
    specs = [load_distro("debian13", lineage="ztest")]
    selection = sharded(2, 2)
    result = run_stage(specs, selection, options(tmp_path, qemu), store=store)
    data = json.loads((result.run_dir / "run.json").read_text())
    assert data["selection"] == "suite=quick shard=2/2"
    shard = data["shard"]
    assert (shard["index"], shard["count"]) == (2, 2)
    assert shard["selection"] == "suite=quick"
    assert shard["durations_digest"] == Durations(TIMES).digest
    assert set(shard["distros"]["debian13"]["tests"].values()) == {1, 2}
    assert result.exit_status == 3  # QEMU could not start: an infrastructure error


def test_dry_run_prints_each_part_and_boots_nothing(tmp_path: Path, store: FileStore) -> None:
    snapshot = tmp_path / "durations.json"
    write_snapshot(dataclasses.replace(Durations(TIMES), runs=4), snapshot)
    done = klab(
        tmp_path, "test", "debian13", "--suite", "quick", "--store", f"file:{store.root}",
        "--durations", str(snapshot), "--shard", "1/2", "--dry-run",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "selection suite=quick; 2 part(s)" in out
    assert "part 1 (this shard)" in out and "part 2:" in out
    assert "rsend (6)" in out
    assert Durations(TIMES).digest[:19] in out
    assert not (tmp_path / "runs").exists()  # no run directory: nothing ran
    assert store.list_clones() == []


def test_clones_balance_by_a_snapshot_and_one_clone_refuses_it(
    tmp_path: Path, store: FileStore
) -> None:
    """--durations also balances `klab test`'s clones (the bench runs them from one snapshot);
    with one clone and no shard it would change nothing: a usage error, not a silent no-op."""
    snapshot = tmp_path / "durations.json"
    write_snapshot(dataclasses.replace(Durations(TIMES), runs=4), snapshot)
    common = ("test", "debian13", "--suite", "quick", "--store", f"file:{store.root}")
    planned = klab(tmp_path, *common, "--clones", "2", "--durations", str(snapshot), "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "2 clone(s)" in planned.stdout and "clone 2:" in planned.stdout
    assert Durations(TIMES).digest[:19] in planned.stdout
    refused = klab(tmp_path, *common, "--clones", "1", "--durations", str(snapshot))
    assert refused.returncode == 2
    assert "--durations applies to --shard, --clones K (K > 1)" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert store.list_clones() == []


@pytest.mark.parametrize("value", ["0/2", "3/2", "1/0", "a/b", "1/999"])
def test_bad_shard_values_exit_2_with_one_line(tmp_path: Path, value: str) -> None:
    done = klab(tmp_path, "test", "debian13", "--suite", "quick", "--shard", value)
    assert done.returncode == 2
    assert "--shard" in done.stderr and "Traceback" not in done.stderr


def test_export_durations_then_use_them(tmp_path: Path, store: FileStore) -> None:
    from tests.unit.testrun.history_builder import HistoryBuilder, t

    history = tmp_path / "build-state" / "history.sqlite"
    history.parent.mkdir(parents=True, exist_ok=True)
    with HistoryBuilder.create(history) as b:
        b.run("r1", {"debian13": [t("rsend/send_0", s=900), t("zil/zil_001", s=10)]})
    out = tmp_path / "d.json"
    done = klab(tmp_path, "history", "--history", str(history), "--export-durations", str(out))
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "digest sha256:" in done.stdout
    assert json.loads(out.read_text())["tests"]["rsend/send_0"] == 900.0
    broken = tmp_path / "broken.json"
    broken.write_text(out.read_text().replace("900.0", "901.0"))
    refused = klab(
        tmp_path, "test", "debian13", "--suite", "quick", "--store", f"file:{store.root}",
        "--durations", str(broken), "--shard", "1/2",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "the digest does not match" in refused.stderr
    assert parse_selection(suite="quick").canonical == "suite=quick"


def test_rc_with_a_shard_gates_the_golden_as_it_is(tmp_path: Path, store: FileStore) -> None:
    """No rebuild (builds.json is empty): the fake QEMU fails, so the shard is an
    infrastructure error, but its run.json names the shard and the snapshot."""
    bin_dir = tmp_path / "bin"
    fake_qemu(bin_dir, "echo 'fake qemu: cannot start' >&2; exit 1")
    snapshot = tmp_path / "durations.json"
    write_snapshot(Durations(TIMES), snapshot)
    env_path = f"{bin_dir}:{os.environ['PATH']}"
    done = subprocess.run(
        [sys.executable, "-m", "imagefactory", "rc", "--distros", "debian13", "--shard", "2/3",
         "--durations", str(snapshot), "--store", f"file:{store.root}", "--accel", "tcg"],
        env={**os.environ, "PATH": env_path, "IMAGEFACTORY_STATE": str(tmp_path / "build-state"),
             "KLAB_LOG_DIR": str(tmp_path / "runs")},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "rebuilding" not in done.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "builds.json").read_text()) == []
    shard = json.loads((run_dir / "run.json").read_text())["shard"]
    assert (shard["index"], shard["count"], shard["selection"]) == (2, 3, "suite=quick")
    assert shard["durations_digest"] == Durations(TIMES).digest
