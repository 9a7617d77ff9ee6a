"""End to end on the files store: build, no-op rebuild, failures and kills never hurt the golden.

Each test boots the bootstrap Debian guest under TCG (a minute or two each), so they share
one project and run in order: the first build's golden is the "old golden" the failure
tests must leave intact.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from imagefactory.builder.mount_image import mounted_root
from imagefactory.builder.seal_check import findings_in_root
from imagefactory.store.base import Golden
from imagefactory.store.select import open_store
from tests.fixtures.stores import build_ids
from tests.integration.builder.conftest import Project

pytestmark = [pytest.mark.vm, pytest.mark.root]

LEAF = "klab-golden-debian"


def golden(project: Project) -> Golden:
    found = open_store(f"file:{project.store_dir}").get_golden(LEAF)
    assert found is not None, "no golden in the store"
    return found


def our_qemus(project: Project) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and str(project.root).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def assert_no_leftovers(project: Project) -> None:
    """After gc: no QEMU, no build volume, no temp file in the store, no lock."""
    gc = project.cli("gc", check=True)
    store = open_store(f"file:{project.store_dir}")
    assert build_ids(store) == [], gc.stdout
    assert our_qemus(project) == []
    leftovers = [
        p.name
        for p in project.store_dir.iterdir()
        if ".build-" in p.name or p.name.startswith(".tmp") or p.suffix == ".part"
    ]
    assert leftovers == []
    locks = project.state / "locks"
    assert not locks.exists() or list(locks.iterdir()) == []


def test_first_build_publishes_a_sealed_readonly_golden(project: Project) -> None:
    proc = project.cli("golden", "debtest", check=True)
    assert "built  debtest: " in proc.stdout
    found = golden(project)
    assert found.readonly
    assert found.path is not None
    assert stat.S_IMODE(found.path.stat().st_mode) & 0o222 == 0
    assert found.provenance.distro == "debtest"
    assert found.provenance.spec_digest and found.provenance.source_digest
    manifest = json.loads(
        (project.state / "builds" / LEAF / found.provenance.build_id / "manifest.json").read_text()
    )
    assert manifest["golden"] == found.name
    assert [s["name"] for s in manifest["steps"]] == [
        "fetch",
        "volume",
        "seed",
        "boot",
        "seal-check",
        "publish",
    ]
    assert manifest["guest_facts"] == {"test_marker": "debtest"}
    # The allocation is the image's data, not its virtual size.
    assert found.allocated < found.virtual_size / 2
    # Check the seal ourselves, independently of the build's own check.
    with mounted_root(found.path, "qcow2") as root:
        assert findings_in_root(root, default_user="debian") == []
        assert (root / "etc" / "machine-id").read_text().strip() == "uninitialized"
    status = project.cli("status", "--json", check=True)
    rows = [g for lineage in json.loads(status.stdout)["lineages"] for g in lineage["goldens"]]
    assert any(r["golden"] == LEAF and r["present"] for r in rows)


def test_rebuild_without_force_is_a_no_op(project: Project) -> None:
    before = golden(project).provenance.build_id
    started = time.monotonic()
    proc = project.cli("golden", "debtest", check=True)
    assert "up to date  debtest" in proc.stdout
    assert golden(project).provenance.build_id == before
    assert time.monotonic() - started < 60  # no boot happened (a boot takes minutes here)


def test_failing_hook_fails_the_build_and_keeps_the_old_golden(project: Project) -> None:
    before = golden(project)
    proc = project.cli("golden", "debfail")
    assert proc.returncode != 0
    assert "20-fail.sh" in proc.stderr
    assert "exit status 7" in proc.stderr
    assert "about to fail on purpose" in proc.stderr  # the hook's output tail
    after = golden(project)
    assert after.provenance.build_id == before.provenance.build_id
    assert_no_leftovers(project)


@pytest.mark.parametrize("point", ["build.fetch", "build.volume", "files.write.converted"])
def test_kill_before_boot_keeps_the_golden_and_gc_cleans_up(project: Project, point: str) -> None:
    before = golden(project).provenance.build_id
    proc = project.cli("golden", "debtest", "--force", extra_env={"IMAGEFACTORY_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    assert golden(project).provenance.build_id == before
    assert_no_leftovers(project)


def test_kill_during_boot_leaves_no_qemu(project: Project) -> None:
    before = golden(project).provenance.build_id
    build = project.popen("golden", "debtest", "--force")
    deadline = time.monotonic() + 300
    while not our_qemus(project):
        assert build.poll() is None, build.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "QEMU never started"
        time.sleep(0.5)
    time.sleep(5)  # well into the boot
    build.kill()
    build.wait()
    deadline = time.monotonic() + 30
    while our_qemus(project) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert our_qemus(project) == [], "QEMU outlived its killed build"
    assert golden(project).provenance.build_id == before
    assert_no_leftovers(project)


def test_kill_at_publish_keeps_a_whole_golden(project: Project) -> None:
    before = golden(project).provenance.build_id
    proc = project.cli(
        "golden",
        "debtest",
        "--force",
        extra_env={"IMAGEFACTORY_CRASH_AT": "files.publish.pending"},
    )
    assert proc.returncode == -signal.SIGKILL
    # Killed before the commit point: the old golden is still the live one.
    assert golden(project).provenance.build_id == before
    assert_no_leftovers(project)
    assert golden(project).provenance.build_id == before


def test_force_rebuild_replaces_the_golden_while_an_old_clone_keeps_working(
    project: Project,
) -> None:
    store = open_store(f"file:{project.store_dir}")
    old = golden(project)
    clone = store.clone(LEAF)
    proc = project.cli("golden", "debtest", "--force", check=True)
    assert "built  debtest" in proc.stdout
    new = golden(project)
    assert new.provenance.build_id != old.provenance.build_id
    # The clone's backing file (the retired golden) is still there and readable.
    info = os.popen(f"qemu-img info --backing-chain --output=json {clone.path}").read()
    chain = json.loads(info)
    assert len(chain) == 2
    assert Path(chain[1]["filename"]).exists()
    kept = project.cli("gc", check=True)
    assert "clone(s) depend on it" in kept.stdout
    store.destroy_clone(clone)
    removed = project.cli("gc", check=True)
    assert "retired" in removed.stdout
    assert [g.leaf for g in store.list_goldens(include_retired=True)] == [LEAF]
