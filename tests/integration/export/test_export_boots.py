"""Acceptance (issue 17): a raw export of the lean fixture boots under QEMU.

The lean test image (tests/fixtures/guest_images.py, the one the hook tests boot) becomes
a golden in a files store, `imagefactory export --format raw` writes it out, and the raw
file itself boots with a NoCloud seed and runs one hook: the export is a bootable disk,
not only the same bytes.  One boot, about a minute under TCG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.store.qemu_img import virtual_size
from imagefactory.vm.accel import select_accel
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.provision import provision
from imagefactory.vm.qemu_args import VmConfig
from imagefactory.vm.seed import build_key_comment, build_seed, generate_ssh_key
from tests.integration.vm.leftovers import Snapshot

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]
HELLO = REPO / "tests" / "integration" / "vm" / "hooks" / "10-hello.sh"


def test_a_raw_export_of_the_lean_fixture_boots(bootstrap_image: Path, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    leaf = "klab-golden-debian"
    volume = store.create_build_volume(leaf, "b1", virtual_size(bootstrap_image, "qcow2"))
    volume = store.write_image(volume, bootstrap_image, source_format="qcow2")
    store.publish(volume, Provenance(distro="debian13", lineage="lean", build_id="b1"))

    disk = tmp_path / "exported.raw"
    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "export", leaf, "--store", store.spec,
         "--format", "raw", "--out", str(disk)],
        capture_output=True, text=True, timeout=1200,
        env={**os.environ, "IMAGEFACTORY_STATE": str(tmp_path / "state"),
             "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    plan = HookPlan.of([Hook.from_file(HELLO, timeout=120.0, env={"GREETING": "exported"})])
    key = generate_ssh_key(tmp_path / "ssh", build_key_comment("t-export"))
    seed = tmp_path / "seed.iso"
    build_seed(name="t-export", default_user="debian", key=key, hooks=plan).write_iso(seed)
    config = VmConfig(
        name="t-export",
        disk=disk,
        disk_format="raw",
        seed=seed,
        accel=select_accel("auto").accel,
        boot_timeout=900.0,
    )
    snapshot = Snapshot.take()
    result = provision(config, plan, log_dir=tmp_path / "logs")
    print(result.report())
    snapshot.assert_clean("t-export", None)
    assert result.ok, result.summary()
    console = result.console_log.read_text(errors="replace")
    assert "10-hello.sh| greeting=exported" in console
