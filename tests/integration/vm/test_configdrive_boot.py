"""Acceptance (issue 17): a sealed guest boots from an OpenStack config drive, not only
from the lab's NoCloud seed.

One boot (about a minute under TCG): a raw copy of the lean test image gets the two
cloud.cfg.d files the seal writes (hooks/common/90-seal.sh, read from the script itself,
written into the image's root filesystem with debugfs -- what the seal would have left),
then boots with a `config-2` ISO (vm/configdrive.py) carrying the NoCloud seed's boot.
The hook reports what ds-identify chose and which datasource cloud-init ran with.
`boot_to_first_hook` is printed for the lead's before/after boot-time comparison.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.vm.accel import select_accel
from imagefactory.vm.configdrive import ConfigDrive
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.provision import provision
from imagefactory.vm.qemu_args import VmConfig
from imagefactory.vm.seed import build_key_comment, build_seed, generate_ssh_key
from tests.fixtures.guest_images import raw_copy
from tests.integration.vm.leftovers import Snapshot
from tests.unit.vm.test_configdrive import seal_files

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

HOOK = Path(__file__).with_name("hooks") / "10-datasource.sh"


def test_a_sealed_guest_boots_from_a_config_drive(bootstrap_image: Path, tmp_path: Path) -> None:
    disk = raw_copy(bootstrap_image, tmp_path)
    commands = ["cd /etc/cloud/cloud.cfg.d"]
    for name, content in seal_files().items():
        local = tmp_path / name
        local.write_text(content)
        local.chmod(0o644)
        commands.append(f"write {local} {name}")
    script = tmp_path / "debugfs.cmd"
    script.write_text("\n".join(commands) + "\n")
    subprocess.run(
        ["debugfs", "-w", "-f", str(script), f"{disk.raw}?offset={disk.offset('root')}"],
        check=True, capture_output=True,
    )  # fmt: skip
    assert set(seal_files()) <= set(disk.ls("/etc/cloud/cloud.cfg.d"))

    plan = HookPlan.of([Hook.from_file(HOOK, timeout=120.0)])
    key = generate_ssh_key(tmp_path / "ssh", build_key_comment("t-configdrive"))
    seed = build_seed(name="t-configdrive", default_user="debian", key=key, hooks=plan)
    drive = tmp_path / "config-2.iso"
    ConfigDrive.from_seed(seed).write_iso(drive)
    config = VmConfig(
        name="t-configdrive",
        disk=disk.raw,
        disk_format="raw",
        seed=drive,
        accel=select_accel("auto").accel,
        boot_timeout=900.0,
    )
    snapshot = Snapshot.take()
    result = provision(config, plan, log_dir=tmp_path / "logs")
    print(result.report())
    print(f"boot to first hook: {result.boot_to_first_hook}")
    snapshot.assert_clean("t-configdrive", None)
    assert result.ok, result.summary()
    console = result.console_log.read_text(errors="replace")
    assert "10-datasource.sh| ds-identify chose: ConfigDrive,None" in console
    assert "10-datasource.sh| cloud-init datasource: DataSourceConfigDrive" in console
