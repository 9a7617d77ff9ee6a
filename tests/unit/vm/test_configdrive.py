"""The config drive and the seal's multi-datasource list, checked without a VM.

The last tests run cloud-init's own `ds-identify` (the host's copy) on a guest root laid
out in a directory: the bootstrap image's cloud.cfg.d file, the seal's files, and one seed
drive -- a real ISO from vm/seed.py or vm/configdrive.py, probed by the real blkid.  Two
small stand-ins describe the guest's hardware, which this host is not: `blkid` lists only
that seed drive, and `systemd-detect-virt` says kvm (this host is a container, where
ds-identify skips the block devices).  What ds-identify decides is its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from imagefactory.fetch.bootstrap_files import CLOUD_CFG_PATH, cloud_cfg
from imagefactory.paths import hooks_dir
from imagefactory.vm.configdrive import CONFIG_DRIVE_LABEL, ConfigDrive, read_config_drive
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.qemu_args import DEFAULT_MAC
from imagefactory.vm.seed import SeedFiles, build_key_comment, build_seed, generate_ssh_key

SEAL = hooks_dir() / "common" / "90-seal.sh"
DOCUMENTED = ["NoCloud", "ConfigDrive", "OpenStack", "Ec2", "GCE", "Azure", "None"]
DS_IDENTIFY = Path("/usr/lib/cloud-init/ds-identify")


def seal_files() -> dict[str, str]:
    """The cloud.cfg.d files the seal writes: name -> content, read from its heredocs."""
    text = SEAL.read_text()
    found = re.findall(
        r"cat >/etc/cloud/cloud\.cfg\.d/(\S+) <<'(\w+)'\n(.*?)\n\2\n", text, flags=re.DOTALL
    )
    return {name: body + "\n" for name, _, body in found}


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> SeedFiles:
    keys = tmp_path_factory.mktemp("keys")
    key = generate_ssh_key(keys, build_key_comment("cd"))
    return build_seed(name="klab-cd", default_user="debian", key=key, hooks=HookPlan.of([]))


def test_the_config_drive_carries_the_seeds_boot(seed: SeedFiles, tmp_path: Path) -> None:
    iso = tmp_path / "config-2.iso"
    ConfigDrive.from_seed(seed).write_iso(iso)
    label, files = read_config_drive(iso)
    assert label == CONFIG_DRIVE_LABEL
    assert set(files) == {"meta_data.json", "user_data", "network_data.json"}
    assert files["user_data"].decode() == seed.user_data
    meta = json.loads(files["meta_data.json"])
    nocloud = yaml.safe_load(seed.meta_data)
    assert meta["uuid"] == nocloud["instance-id"]
    assert meta["hostname"] == nocloud["local-hostname"]
    network = json.loads(files["network_data.json"])
    assert network["links"][0]["ethernet_mac_address"] == DEFAULT_MAC
    assert network["networks"][0] == {"id": "net0", "type": "ipv4_dhcp", "link": "nic0"}
    assert not list(tmp_path.glob("*.part"))


def test_the_seal_writes_the_documented_list_after_the_bootstraps() -> None:
    files = seal_files()
    lists = {n: yaml.safe_load(c).get("datasource_list") for n, c in files.items()}
    [(name, listed)] = [(n, v) for n, v in lists.items() if v is not None]
    assert listed == DOCUMENTED
    # ds-identify reads the list from one `datasource_list: [...]` line.
    assert re.search(r"^datasource_list: \[[^\n]*\]$", files[name], flags=re.MULTILINE)
    # It sorts after the bootstrap's own file (and the vendors' 90_dpkg.cfg and kin).
    bootstrap = Path(CLOUD_CFG_PATH).name
    assert yaml.safe_load(cloud_cfg())["datasource_list"] == ["NoCloud", "None"]
    assert sorted([bootstrap, "90_dpkg.cfg", "99-vendor.cfg", name])[-1] == name
    # Ec2's strict_id is read by ds-identify only from a file named *ec2*.cfg.
    [ec2] = [n for n in files if fnmatch(n.lower(), "*ec2*.cfg")]
    assert yaml.safe_load(files[ec2]) == {"datasource": {"Ec2": {"strict_id": True}}}


def _guest_root(tmp_path: Path, seed_iso: Path, *, sealed: bool) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "root"
    cfg_d = root / "etc/cloud/cloud.cfg.d"
    cfg_d.mkdir(parents=True)
    (root / "etc/cloud/cloud.cfg").write_text("")
    (cfg_d / Path(CLOUD_CFG_PATH).name).write_text(cloud_cfg())
    if sealed:
        for name, content in seal_files().items():
            (cfg_d / name).write_text(content)
    dmi = root / "sys/class/dmi/id"
    dmi.mkdir(parents=True)
    (dmi / "sys_vendor").write_text("QEMU\n")
    (dmi / "product_name").write_text("Standard PC (Q35 + ICH9, 2009)\n")
    (root / "proc").mkdir()
    (root / "proc/cmdline").write_text("\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    blkid = shutil.which("blkid", path="/usr/sbin:/sbin:/usr/bin") or "blkid"
    (bin_dir / "blkid").write_text(
        f"#!/bin/sh\n{blkid} -p -o export '{seed_iso}' | sed 's|^DEVNAME=.*|DEVNAME=/dev/vdb|'\n"
    )
    (bin_dir / "systemd-detect-virt").write_text(
        '#!/bin/sh\n[ "$1" = --container ] && { echo none; exit 1; }\necho kvm\n'
    )
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PATH_ROOT": str(root)}
    return root, env


def _chosen(root: Path, env: dict[str, str]) -> list[str]:
    proc = subprocess.run(
        ["sh", str(DS_IDENTIFY), "--force"], env=env, capture_output=True, text=True, timeout=60
    )
    written = root / "run/cloud-init/cloud.cfg"
    assert written.is_file(), proc.stdout + proc.stderr
    chosen: list[str] = yaml.safe_load(written.read_text())["datasource_list"] or []
    return chosen


needs_ds_identify = pytest.mark.skipif(
    not DS_IDENTIFY.exists(), reason="cloud-init's ds-identify is not installed here"
)


@needs_ds_identify
@pytest.mark.parametrize("kind", ["config-2", "cidata"])
def test_ds_identify_picks_only_the_seed_present_in_a_sealed_guest(
    seed: SeedFiles, tmp_path: Path, kind: str
) -> None:
    iso = tmp_path / f"{kind}.iso"
    if kind == "config-2":
        ConfigDrive.from_seed(seed).write_iso(iso)
    else:
        seed.write_iso(iso)
    root, env = _guest_root(tmp_path, iso, sealed=True)
    expected = "ConfigDrive" if kind == "config-2" else "NoCloud"
    # One source and None: no metadata service (Ec2, OpenStack, GCE, Azure) is waited on.
    assert _chosen(root, env) == [expected, "None"]


@needs_ds_identify
def test_without_the_seal_a_config_drive_is_not_seen(seed: SeedFiles, tmp_path: Path) -> None:
    iso = tmp_path / "config-2.iso"
    ConfigDrive.from_seed(seed).write_iso(iso)
    root, env = _guest_root(tmp_path, iso, sealed=False)
    assert "ConfigDrive" not in _chosen(root, env)
