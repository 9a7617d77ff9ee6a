"""The NoCloud seed: files read back from the ISO, unique ids, MAC-matched DHCP, build keys."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from imagefactory.cli import main
from imagefactory.errors import UsageError
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.qemu_args import DEFAULT_MAC
from imagefactory.vm.seed import (
    SeedFiles,
    build_key_comment,
    build_seed,
    generate_ssh_key,
    hostname_for,
    network_config_v2,
    read_seed_iso,
    render_meta_data,
    volume_label,
)

PLAN = HookPlan.of([Hook("10-a.sh", b"#!/bin/bash\necho a\n", 10)])


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


def test_seed_iso_holds_the_three_files_under_their_rock_ridge_names(tmp_path: Path) -> None:
    seed = SeedFiles("#cloud-config\n{}\n", "instance-id: i-1\n", "version: 2\n")
    iso = tmp_path / "seed.iso"
    seed.write_iso(iso)
    assert read_seed_iso(iso) == seed.as_dict()
    assert volume_label(iso) == "cidata"
    assert not (tmp_path / "seed.iso.part").exists()


def test_blkid_sees_an_iso9660_filesystem_labelled_cidata(tmp_path: Path) -> None:
    """What cloud-init's NoCloud looks for in the guest: TYPE=iso9660, LABEL=cidata."""
    blkid = shutil.which("blkid")
    if blkid is None:
        pytest.skip("blkid (util-linux) is not installed")
    iso = tmp_path / "seed.iso"
    SeedFiles("#cloud-config\n", "instance-id: i\n", "version: 2\n").write_iso(iso)
    out = subprocess.run(
        [blkid, "-p", "-o", "export", str(iso)], capture_output=True, text=True, check=True
    ).stdout
    assert "TYPE=iso9660" in out.splitlines() and "LABEL=cidata" in out.splitlines()


def test_each_seed_gets_a_new_instance_id(key_dir: Path) -> None:
    key = generate_ssh_key(key_dir / "a", "imagefactory-build-t-a")
    first = build_seed(name="debian13", default_user="debian", key=key, hooks=PLAN)
    second = build_seed(name="debian13", default_user="debian", key=key, hooks=PLAN)
    ids = {yaml.safe_load(s.meta_data)["instance-id"] for s in (first, second)}
    assert len(ids) == 2
    assert all(i.startswith("imagefactory-debian13-") for i in ids)
    assert yaml.safe_load(first.meta_data)["local-hostname"] == "debian13"


def test_meta_data_carries_instance_id_and_hostname() -> None:
    assert yaml.safe_load(render_meta_data("i-1", "host")) == {
        "instance-id": "i-1",
        "local-hostname": "host",
    }


def test_hostnames_are_valid_labels() -> None:
    assert hostname_for("fedora44") == "fedora44"
    assert hostname_for("My_Spec.v2") == "my-spec-v2"
    assert hostname_for("___") == "imagefactory"
    assert len(hostname_for("x" * 100)) == 63


def test_network_config_is_v2_dhcp_on_the_nic_with_the_vms_mac() -> None:
    config = network_config_v2("52:54:00:AB:CD:EF")
    assert config == {
        "version": 2,
        "ethernets": {
            "nic0": {"match": {"macaddress": "52:54:00:ab:cd:ef"}, "dhcp4": True, "dhcp6": False}
        },
    }
    with pytest.raises(UsageError, match="not a MAC address"):
        network_config_v2("52:54:00:12:34")


def test_ssh_key_is_per_build_private_to_us_and_named_by_its_comment(key_dir: Path) -> None:
    comment = build_key_comment("debian13")
    assert comment.startswith("imagefactory-build-debian13-")
    assert comment != build_key_comment("debian13")
    key = generate_ssh_key(key_dir / "b", comment)
    assert stat.S_IMODE(key.private_key.stat().st_mode) == 0o600
    assert key.public_key.startswith("ssh-ed25519 ") and key.public_key.endswith(" " + comment)
    again = generate_ssh_key(key_dir / "b", comment)
    assert again.public_key != key.public_key


def test_only_the_public_key_goes_into_the_seed(key_dir: Path, tmp_path: Path) -> None:
    key = generate_ssh_key(key_dir / "c", "imagefactory-build-t-c")
    seed = build_seed(name="t", default_user="u", key=key, hooks=PLAN)
    seed.write_iso(tmp_path / "seed.iso")
    blob = b"".join(read_seed_iso(tmp_path / "seed.iso").values())
    private_body = key.private_key.read_text().splitlines()[1].encode()
    assert key.public_key.encode() in blob
    assert private_body not in blob and b"PRIVATE KEY" not in blob


def test_seed_command_writes_files_iso_and_key(tmp_path: Path) -> None:
    out = tmp_path / "seed"
    assert main(["-q", "seed", "debian13", "--kind", "ztest", "--out", str(out)]) == 0
    for name in ("user-data", "meta-data", "network-config", "seed.iso", "ssh/id_ed25519"):
        assert (out / name).is_file(), name
    on_iso = read_seed_iso(out / "seed.iso")
    assert on_iso["user-data"] == (out / "user-data").read_bytes()
    assert yaml.safe_load(on_iso["network-config"])["ethernets"]["nic0"]["match"] == {
        "macaddress": DEFAULT_MAC
    }


def test_seed_command_rejects_an_unknown_distro(tmp_path: Path) -> None:
    assert main(["-q", "seed", "no-such-distro", "--out", str(tmp_path)]) == 2
