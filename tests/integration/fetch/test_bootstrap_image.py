"""The bootstrap image's structure, checked without booting it.

The image comes from the `bootstrap_image` fixture (built once, then cached).  It is
converted to a sparse raw copy and read with sfdisk, blkid, debugfs (``image?offset=``) and
mtools: no loop device, no mount.  Booting it is what the vm tests do.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from imagefactory.fetch import bootstrap_files, disk_image
from imagefactory.fetch.bootstrap import ensure_bootstrap_image
from imagefactory.fetch.disk_image import MIB
from imagefactory.run import run
from tests.fixtures.guest_images import (
    TEST_DISK_BYTES,
    GuestDisk,
    guest_image,
    guest_images_cache,
    guest_source,
    raw_copy,
)

pytestmark = [pytest.mark.root, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def disk(bootstrap_image: Path, tmp_path_factory: pytest.TempPathFactory) -> GuestDisk:
    return raw_copy(bootstrap_image, tmp_path_factory.mktemp("bios"))


def test_image_is_a_small_compressed_qcow2_of_the_requested_size(bootstrap_image: Path) -> None:
    info = json.loads(run(["qemu-img", "info", "--output=json", bootstrap_image]).stdout)
    assert info["format"] == "qcow2"
    assert info["virtual-size"] == TEST_DISK_BYTES
    assert bootstrap_image.stat().st_size < 300 * MIB


def test_disk_is_gpt_with_a_bios_bootable_root_and_syslinux_mbr(disk: GuestDisk) -> None:
    assert disk.table["label"] == "gpt"
    assert set(disk.parts) == {"root"}
    root = disk.parts["root"]
    assert root["attrs"] == "LegacyBIOSBootable"
    assert root["node"].endswith("1")
    with disk.raw.open("rb") as f:
        assert f.read(440) == disk_image.find_gptmbr().read_bytes()[:440]


def test_root_is_ext4_with_kernel_initrd_and_extlinux(disk: GuestDisk) -> None:
    assert disk.blkid("root")["TYPE"] == "ext4"
    boot = disk.ls("/boot")
    kernel = disk.symlink("/boot/vmlinuz")
    initrd = disk.symlink("/boot/initrd.img")
    assert kernel in boot and kernel.startswith("vmlinuz-")
    assert initrd in boot and initrd == "initrd.img-" + kernel.removeprefix("vmlinuz-")
    assert kernel.endswith("-cloud-amd64")
    assert {"extlinux.conf", "ldlinux.sys", "ldlinux.c32"} <= set(disk.ls("/boot/extlinux"))


def test_extlinux_boots_the_root_by_uuid_with_a_serial_console(disk: GuestDisk) -> None:
    config = disk.cat("/boot/extlinux/extlinux.conf")
    uuid = disk.blkid("root")["UUID"]
    assert config == bootstrap_files.extlinux_conf(uuid)
    assert "console=ttyS0" in config and "panic=-1" in config
    assert disk.cat("/etc/fstab").startswith(f"UUID={uuid}\t/\text4")


def test_cloud_init_is_installed_and_looks_for_nocloud_only(disk: GuestDisk) -> None:
    assert "cloud-init" in disk.ls("/usr/bin")
    config = yaml.safe_load(disk.cat("/" + bootstrap_files.CLOUD_CFG_PATH))
    assert config["datasource_list"] == ["NoCloud", "None"]


def test_networking_is_systemd_networkd_with_resolved_and_no_ifupdown(disk: GuestDisk) -> None:
    assert "systemd-networkd.service" in disk.ls("/etc/systemd/system/multi-user.target.wants")
    assert disk.symlink("/etc/resolv.conf") == "../run/systemd/resolve/stub-resolv.conf"
    assert "ip" in disk.ls("/usr/bin") or "ip" in disk.ls("/usr/sbin")
    assert "ifup" not in disk.ls("/usr/sbin")
    assert "DHCP=yes" in disk.cat("/" + bootstrap_files.FALLBACK_NETWORK_PATH)


def test_image_has_no_host_identity(disk: GuestDisk) -> None:
    assert disk.cat("/etc/machine-id") == ""
    assert disk.cat("/etc/hostname") == "debian\n"
    assert "sudo" in disk.ls("/usr/bin")


def test_a_second_request_is_a_cache_hit_on_the_same_object(bootstrap_image: Path) -> None:
    before = bootstrap_image.stat()
    path, digest = ensure_bootstrap_image(
        guest_source(), guest_images_cache(), firmware="bios", size_bytes=TEST_DISK_BYTES
    )
    assert path == bootstrap_image
    assert path.name == digest.hexdigest
    assert path.stat().st_mtime_ns == before.st_mtime_ns


def test_uefi_image_has_an_esp_with_grub_reading_the_ext4_root(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    disk = raw_copy(guest_image(firmware="uefi"), tmp_path_factory.mktemp("uefi"))
    assert set(disk.parts) == {"root", "esp"}
    assert disk.parts["esp"]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert int(disk.parts["esp"]["start"]) < int(disk.parts["root"]["start"])
    esp = disk.blkid("esp")
    assert esp["TYPE"] == "vfat" and esp["VERSION"] == "FAT32"
    efi = subprocess.run(
        ["mtype", "-i", f"{disk.raw}@@{disk.offset('esp')}", "::/EFI/BOOT/BOOTX64.EFI"],
        check=True,
        capture_output=True,
    ).stdout
    assert efi[:2] == b"MZ"  # a PE/COFF executable
    uuid = disk.blkid("root")["UUID"]
    assert uuid.encode() in efi  # the embedded config finds the root by its UUID
    assert disk.cat("/boot/grub/grub.cfg") == bootstrap_files.grub_cfg(uuid)
    assert f"UUID={esp['UUID']}\t/boot/efi\tvfat" in disk.cat("/etc/fstab")
    assert "efi" in disk.ls("/boot")


def test_first_boot_skips_systemds_update_services(disk: GuestDisk) -> None:
    # ConditionNeedsUpdate= compares these files' mtime with /usr's.
    for directory in ("/etc", "/var"):
        mtime = re.search(r"mtime: (0x[0-9a-f]+)", disk.debugfs(f"stat {directory}/.updated"))
        usr = re.search(r"mtime: (0x[0-9a-f]+)", disk.debugfs("stat /usr"))
        assert mtime and usr
        assert int(mtime.group(1), 16) >= int(usr.group(1), 16)
