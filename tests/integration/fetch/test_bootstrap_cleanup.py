"""Loop devices and mounts used while assembling a disk never outlive their step."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import InfrastructureError
from imagefactory.fetch import disk_image
from imagefactory.fetch.disk_image import MIB, plan_layout
from imagefactory.run import run

pytestmark = pytest.mark.root

UUID = "9e5d8f2a-1b3c-4d5e-8f70-112233445566"


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("loop devices and mounts need root")


def loop_devices() -> set[str]:
    return set(run(["losetup", "--list", "--noheadings", "--output", "NAME"]).stdout.split())


def ext4_disk(tmp_path: Path, *, config: str | None = None) -> tuple[Path, disk_image.Partition]:
    tree = tmp_path / "tree"
    (tree / "boot" / "extlinux").mkdir(parents=True)
    if config is not None:
        (tree / "boot" / "extlinux" / "extlinux.conf").write_text(config)
    raw = tmp_path / "disk.raw"
    layout = plan_layout(1024 * MIB, firmware="bios")
    disk_image.create_partitioned_disk(raw, layout)
    disk_image.make_root_filesystem(raw, layout.root, tree, uuid=UUID)
    return raw, layout.root


def test_an_error_inside_the_mount_releases_mount_and_loop_device(tmp_path: Path) -> None:
    raw, root = ext4_disk(tmp_path)
    mountpoint = tmp_path / "mnt"
    before = loop_devices()
    with (
        pytest.raises(RuntimeError, match="boom"),
        disk_image.offset_loop_device(raw, offset=root.start, size=root.size) as device,
        disk_image.mounted(device, mountpoint),
    ):
        assert (mountpoint / "boot" / "extlinux").is_dir()
        assert str(device) in loop_devices()
        raise RuntimeError("boom")
    assert disk_image.mounts_under(mountpoint) == []
    assert loop_devices() == before


def test_the_loop_device_is_bounded_to_its_partition(tmp_path: Path) -> None:
    raw, root = ext4_disk(tmp_path)
    with disk_image.offset_loop_device(
        raw, offset=root.start, size=root.size, read_only=True
    ) as dev:
        size = int(run(["blockdev", "--getsize64", dev]).stdout)
        assert size == root.size
        assert 'TYPE="ext4"' in run(["blkid", dev]).stdout


def test_extlinux_install_without_its_config_fails_and_still_detaches(tmp_path: Path) -> None:
    raw, root = ext4_disk(tmp_path)
    before = loop_devices()
    with pytest.raises(InfrastructureError, match=r"no extlinux\.conf"):
        disk_image.install_extlinux(raw, root, mountpoint=tmp_path / "mnt")
    assert loop_devices() == before
    assert disk_image.mounts_under(tmp_path) == []


def test_extlinux_install_writes_loader_and_boot_sector_then_detaches(tmp_path: Path) -> None:
    raw, root = ext4_disk(tmp_path, config="DEFAULT x\n")
    before = loop_devices()
    disk_image.install_extlinux(raw, root, mountpoint=tmp_path / "mnt")
    assert loop_devices() == before
    assert disk_image.mounts_under(tmp_path) == []
    listing = run(["debugfs", "-R", "ls /boot/extlinux", f"{raw}?offset={root.start}"]).stdout
    assert "ldlinux.sys" in listing and "ldlinux.c32" in listing
    with raw.open("rb") as f:
        f.seek(root.start)
        boot_sector = f.read(512)
    assert boot_sector[510:512] == b"\x55\xaa"  # extlinux wrote the partition's VBR
    assert b"SYSLINUX" in boot_sector or b"EXTLINUX" in boot_sector


def test_remove_tree_unmounts_a_leftover_chroot_mount_instead_of_deleting_through_it(
    tmp_path: Path,
) -> None:
    # An interrupted mmdebstrap can leave host directories (/dev, /sys) bind-mounted in the
    # chroot; a bind mount of a directory outside the work dir stands in for one.
    host = tmp_path / "host"
    host.mkdir()
    (host / "precious").write_text("host data")
    work = tmp_path / "work"
    dev = work / "tree" / "dev"
    dev.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(host), str(dev)], check=True)
    try:
        assert disk_image.mounts_under(work) == [dev]
        disk_image.remove_tree(work)
        assert not work.exists()
        assert disk_image.mounts_under(tmp_path) == []
        assert (host / "precious").read_text() == "host data"
    finally:
        subprocess.run(["umount", "-q", str(dev)], check=False)
