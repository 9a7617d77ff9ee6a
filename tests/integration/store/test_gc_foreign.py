"""`imagefactory gc` removes only what the factory made, and never takes a live build for
dead -- not even from another PID namespace (`unshare --pid`), where the build's pid
means nothing.

Real parts throughout: a files store in a temporary directory, builds and VMs held by real
processes (the build volume's owner lease and the VM directory's lock are flocks), `gc`
run as the CLI in a subprocess, `unshare` for the PID namespace, and a real QEMU that
inherits a VM directory's lock.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagefactory.run import require_tool
from imagefactory.store.files import FileStore
from imagefactory.store.manifest import TEMP_DIR
from imagefactory.vm.tempdir import RECORD, VM_TEMP_PREFIX, VmTempDir, stale_vm_dirs
from tests.fixtures.stores import build_ids

REPO = Path(__file__).resolve().parents[3]
LEAF = "klab-golden-debian"
NOBODY = 65534

# A process that owns a build volume and a VM directory, says where they are, then waits
# (or, with "exit", dies without cleaning up: a killed build).
HOLDER = """
import json, os, sys, time
from pathlib import Path
from imagefactory.log import configure_logging
from imagefactory.store.files import FileStore
from imagefactory.vm.tempdir import VmTempDir
configure_logging(-1)
store = FileStore(sys.argv[1])
volume = store.create_build_volume(sys.argv[2], sys.argv[3], 1 << 20)
vm = VmTempDir.create(f"klab-{sys.argv[3]}", Path(sys.argv[4]) if sys.argv[4] else volume.path)
print(json.dumps({"volume": volume.name, "vm_dir": str(vm.path)}), flush=True)
if sys.argv[5] == "exit":
    os._exit(0)
time.sleep(3600)
"""


@dataclass
class Site:
    store: Path
    tmp: Path
    state: Path
    outside: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TMPDIR": str(self.tmp),
            "IMAGEFACTORY_STATE": str(self.state),
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }


@pytest.fixture
def site(tmp_path: Path) -> Site:
    site = Site(tmp_path / "store", tmp_path / "tmp", tmp_path / "state", tmp_path / "outside")
    for path in (site.store, site.tmp, site.state, site.outside):
        path.mkdir()
    return site


def hold(
    site: Site, build_id: str, *, disk: Path | None = None, exit_now: bool = False
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(site.store), LEAF, build_id, str(disk or ""),
         "exit" if exit_now else "wait"],
        stdout=subprocess.PIPE, text=True, env=site.env, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the holder process failed"
    if exit_now:
        assert proc.wait(timeout=60) == 0
    return proc, json.loads(line)


@pytest.fixture
def live_build(site: Site) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    proc, paths = hold(site, "alive")
    try:
        yield proc, paths
    finally:
        proc.kill()
        proc.wait()


def gc(site: Site, *args: str, prefix: tuple[str, ...] = ()) -> str:
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "imagefactory", "gc", "--store", f"file:{site.store}",
         *args],
        capture_output=True, text=True, env=site.env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def foreign_vm_dir(site: Site, name: str, record: dict[str, object] | None) -> Path:
    path = site.tmp / f"{VM_TEMP_PREFIX}{name}"
    path.mkdir(mode=0o700)
    if record is not None:
        (path / RECORD).write_text(json.dumps(record))
    return path


def test_gc_removes_none_of_what_is_not_the_factorys(site: Site) -> None:
    # What gc must remove (so the test can fail): a killed build's volume and VM directory.
    _, dead = hold(site, "dead", exit_now=True)
    store_root = site.store.resolve()

    victim = site.outside / "victim.qcow2"
    victim.write_bytes(b"precious")
    (site.outside / "build.json").write_text((store_root / f"{LEAF}.build-dead.json").read_text())
    foreign = [
        store_root / ".mydata.tmp-999999-deadbeef",
        store_root / f".{LEAF}.json.tmp-999999-deadbeef",  # the old temp-name pattern
        store_root / "notes.txt",
        store_root / "klab-golden-fedora.qcow2",  # an image without a manifest
        store_root / f"{LEAF}.build-nomanifest.qcow2",
        store_root / TEMP_DIR / "notes.txt",
        store_root / TEMP_DIR / f"notes.txt.tmp-{'0' * 32}-deadbeef",
    ]
    for path in foreign:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"someone else's")
    links = {
        store_root / "klab-golden-rocky.qcow2": victim,
        # A dead build's manifest, but reached through a symlink: not a marker.
        store_root / f"{LEAF}.build-linked.json": site.outside / "build.json",
        store_root / TEMP_DIR / f"{LEAF}.qcow2.tmp-{'0' * 32}-deadbeef": victim,
    }
    for link, target in links.items():
        link.symlink_to(target)
    # A marked, dead build volume whose image was swapped for a symlink: kept, reported.
    _, swapped = hold(site, "swapped", exit_now=True)
    Path(swapped["volume"]).unlink()
    Path(swapped["volume"]).symlink_to(victim)
    shutil.rmtree(swapped["vm_dir"])

    other_store_disk = site.outside / "other-store" / f"{LEAF}.build-x.qcow2"
    record = {"format": 1, "uid": os.geteuid(), "vm": "klab-x", "disk": str(other_store_disk)}
    ours = {**record, "disk": str(store_root / f"{LEAF}.build-x.qcow2")}
    vm_dirs = [
        foreign_vm_dir(site, "other-store-abc", record),
        foreign_vm_dir(site, "no-record-abc", None),
        foreign_vm_dir(site, "garbage-record-abc", None),
        foreign_vm_dir(site, "other-user-abc", ours),
    ]
    (vm_dirs[2] / RECORD).write_text("[[[[")
    for path in (vm_dirs[3], vm_dirs[3] / RECORD):
        os.chown(path, NOBODY, NOBODY)
    elsewhere = foreign_vm_dir(site, "elsewhere-abc", ours).rename(site.outside / "vm-dir")
    (site.tmp / f"{VM_TEMP_PREFIX}link-abc").symlink_to(elsewhere)
    (site.tmp / f"{VM_TEMP_PREFIX}file-abc").write_bytes(b"a file")

    out = gc(site)

    assert f"removed {LEAF}.build-dead" in out
    assert f"{dead['vm_dir']}" in out and not Path(dead["vm_dir"]).exists()
    assert not Path(dead["volume"]).exists()
    assert f"kept {LEAF}.build-swapped: refused" in out
    for path in [*foreign, *links, *vm_dirs, elsewhere, site.tmp / f"{VM_TEMP_PREFIX}file-abc"]:
        assert path.is_symlink() or path.exists(), path
    assert victim.read_bytes() == b"precious"
    assert (elsewhere / RECORD).exists() and (site.tmp / f"{VM_TEMP_PREFIX}link-abc").is_symlink()
    assert Path(swapped["volume"]).is_symlink()


def _unshare_works() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def test_gc_in_another_pid_namespace_never_takes_a_live_build_for_dead(
    site: Site, live_build: tuple[subprocess.Popen[str], dict[str, str]]
) -> None:
    if not _unshare_works():
        pytest.skip("unshare --pid --fork --mount-proc is not permitted here (needs root)")
    proc, paths = live_build
    namespace = ("unshare", "--pid", "--fork", "--mount-proc")

    out = gc(site, "--dry-run", prefix=namespace)
    assert f"kept {LEAF}.build-alive: its build is still running" in out
    assert "would remove" not in out and paths["vm_dir"] not in out
    out = gc(site, prefix=namespace)
    assert f"kept {LEAF}.build-alive" in out
    assert Path(paths["volume"]).exists() and Path(paths["vm_dir"]).exists()

    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = gc(site, prefix=namespace)
    assert f"removed {LEAF}.build-alive" in out and f"{paths['vm_dir']}" in out
    assert build_ids(FileStore(site.store)) == []
    assert not Path(paths["vm_dir"]).exists()


def test_a_vm_directory_stays_in_use_while_its_qemu_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The factory passes the directory's lock to QEMU: a killed factory's VM that still
    runs keeps its directory; once QEMU is gone too, gc may remove it."""
    qemu = require_tool("qemu-system-x86_64", package="qemu-system-x86")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    disk = tmp_path / "disk.qcow2"
    vm = VmTempDir.create("klab-t-gc-live", disk)
    try:
        child = subprocess.Popen(
            [qemu, "-name", "klab-t-gc-live", "-machine", "none", "-S", "-display", "none",
             "-nodefaults", "-monitor", "none", "-serial", "none"],
            pass_fds=(vm.fd,), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(vm.fd)  # the factory is gone: only QEMU holds the lock now
        try:
            base = vm.path.parent
            assert stale_vm_dirs(lambda p: p == disk, root=base, dry_run=True) == []
        finally:
            child.kill()
            child.wait()
        assert stale_vm_dirs(lambda p: p != disk, root=base) == []  # another store's
        assert stale_vm_dirs(lambda p: p == disk, root=base) == [vm.path]
        assert not vm.path.exists()
    finally:
        shutil.rmtree(vm.path, ignore_errors=True)
