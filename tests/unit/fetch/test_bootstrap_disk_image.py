"""Disk assembly with the real tools on sparse files: no root, no loop devices, no mounts.

sgdisk, mke2fs, mkfs.vfat and mtools all work on plain files at an offset; what they wrote
is read back with sfdisk, debugfs and mtools.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.fetch import disk_image
from imagefactory.fetch.disk_image import MIB, find_gptmbr, plan_layout
from imagefactory.run import run

GIB = 1024 * MIB
UUID = "6a3f41c2-9d1b-4c55-8e0f-1234567890ab"


def partition_table(raw: Path) -> dict[str, dict[str, object]]:
    table = json.loads(run(["sfdisk", "--json", raw]).stdout)["partitiontable"]
    assert table["label"] == "gpt"
    return {str(p["name"]): p for p in table["partitions"]}


def test_bios_layout_is_one_aligned_root_partition_filling_the_disk() -> None:
    layout = plan_layout(4 * GIB, firmware="bios")
    assert layout.esp is None
    assert layout.root.number == 1 and layout.root.start == MIB
    assert layout.root.start % MIB == 0 and layout.root.size % MIB == 0
    assert layout.root.start + layout.root.size <= 4 * GIB - 34 * 512
    assert 4 * GIB - (layout.root.start + layout.root.size) < 2 * MIB
    assert layout.root.legacy_bios_bootable


def test_uefi_layout_puts_the_esp_first_and_root_last_for_growpart() -> None:
    layout = plan_layout(4 * GIB, firmware="uefi")
    assert layout.esp is not None
    assert layout.esp.number == 15 and layout.esp.start == MIB
    assert layout.root.start == layout.esp.start + layout.esp.size
    assert layout.root.number == 1


def test_too_small_a_disk_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="too small"):
        plan_layout(100 * MIB, firmware="bios")


def test_partition_table_and_mbr_boot_code_are_written(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    layout = plan_layout(2 * GIB, firmware="uefi")
    disk_image.create_partitioned_disk(raw, layout)
    assert raw.stat().st_size == 2 * GIB
    assert raw.stat().st_blocks * 512 < 4 * MIB  # sparse
    parts = partition_table(raw)
    assert layout.esp is not None
    assert parts["root"]["start"] == layout.root.start_sector
    assert parts["root"]["size"] == layout.root.size // 512
    assert parts["root"]["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    assert parts["root"]["attrs"] == "LegacyBIOSBootable"
    assert parts["esp"]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    assert parts["esp"]["start"] == layout.esp.start_sector
    with raw.open("rb") as f:
        mbr = f.read(512)
    assert mbr[:440] == find_gptmbr().read_bytes()[:440]
    assert mbr[510:512] == b"\x55\xaa"
    assert mbr[450] == 0xEE  # protective MBR entry survived the boot code write


def test_root_filesystem_is_populated_in_place_at_the_partition_offset(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "boot" / "vmlinuz-1").write_bytes(b"kernel")
    (tree / "boot" / "vmlinuz").symlink_to("vmlinuz-1")
    secret = tree / "etc" / "shadow"
    secret.parent.mkdir()
    secret.write_text("root:*:1::::::\n")
    secret.chmod(0o640)
    raw = tmp_path / "disk.raw"
    layout = plan_layout(1 * GIB, firmware="bios")
    disk_image.create_partitioned_disk(raw, layout)
    disk_image.make_root_filesystem(raw, layout.root, tree, uuid=UUID)

    at_offset = f"{raw}?offset={layout.root.start}"
    blkid = run(["blkid", "-p", "-o", "export", "-O", str(layout.root.start), raw]).stdout
    assert "TYPE=ext4" in blkid and f"UUID={UUID}" in blkid and "LABEL=root" in blkid
    assert run(["debugfs", "-R", "cat /boot/vmlinuz-1", at_offset]).stdout == "kernel"
    link = run(["debugfs", "-R", "stat /boot/vmlinuz", at_offset]).stdout
    assert 'Fast link dest: "vmlinuz-1"' in link
    mode = run(["debugfs", "-R", "stat /etc/shadow", at_offset]).stdout
    assert f"Mode:  {stat.S_IMODE(0o640):04o}" in mode
    # The filesystem ends inside its partition: e2fsck on exactly that byte range is clean.
    part_file = tmp_path / "root.img"
    run(["dd", f"if={raw}", f"of={part_file}", "bs=1M", f"skip={layout.root.start // MIB}",
         f"count={layout.root.size // MIB}", "conv=sparse", "status=none"])  # fmt: skip
    run(["e2fsck", "-f", "-n", part_file])


def test_a_tree_larger_than_the_partition_is_refused_with_the_sizes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with (tree / "big").open("wb") as f:
        f.write(b"\1" * (8 * MIB))
    small = disk_image.Partition(1, MIB, 16 * MIB, "8304", "root")
    with pytest.raises(UsageError, match="needs about 8 MiB but the root partition has 16 MiB"):
        disk_image.make_root_filesystem(tmp_path / "disk.raw", small, tree, uuid=UUID)


def test_esp_is_fat32_with_files_written_without_mounting(tmp_path: Path) -> None:
    raw = tmp_path / "disk.raw"
    layout = plan_layout(1 * GIB, firmware="uefi")
    assert layout.esp is not None
    disk_image.create_partitioned_disk(raw, layout)
    efi = tmp_path / "BOOTX64.EFI"
    efi.write_bytes(b"MZ" + b"\0" * 1000)
    disk_image.make_esp(raw, layout.esp, {"EFI/BOOT/BOOTX64.EFI": efi}, volume_id="ABCD1234")
    blkid = run(["blkid", "-p", "-o", "export", "-O", str(layout.esp.start), raw]).stdout
    assert "TYPE=vfat" in blkid and "VERSION=FAT32" in blkid and "UUID=ABCD-1234" in blkid
    image = f"{raw}@@{layout.esp.start}"
    copied = tmp_path / "copied.efi"
    run(["mcopy", "-i", image, "::/EFI/BOOT/BOOTX64.EFI", copied])
    assert copied.read_bytes() == efi.read_bytes()


def test_mounts_under_finds_nothing_in_a_fresh_directory(tmp_path: Path) -> None:
    assert disk_image.mounts_under(tmp_path) == []


def test_remove_tree_deletes_an_unmounted_work_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "tree" / "etc").mkdir(parents=True)
    (work / "tree" / "etc" / "fstab").write_text("x")
    disk_image.remove_tree(work)
    assert not work.exists()
    disk_image.remove_tree(work)  # already gone: fine


def test_remove_tree_stops_processes_still_working_in_the_directory(tmp_path: Path) -> None:
    # What an interrupted mmdebstrap leaves: helpers naming the work dir, still writing.
    work = tmp_path / "work"
    other = tmp_path / "other"
    for directory in (work, other):
        directory.mkdir()
        (directory / "log").write_text("")
    leftover = subprocess.Popen(["tail", "-f", str(work / "log")])
    bystander = subprocess.Popen(["tail", "-f", str(other / "log")])
    try:
        # Until it has exec'd, the child is a copy of pytest naming nothing: wait for tail.
        deadline = time.monotonic() + 10
        while disk_image.processes_inside(work) != [leftover.pid] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert disk_image.processes_inside(work) == [leftover.pid]
        disk_image.remove_tree(work)
        assert leftover.wait(timeout=10) == -signal.SIGKILL
        assert not work.exists()
        assert bystander.poll() is None
    finally:
        for proc in (leftover, bystander):
            proc.kill()
            proc.wait()
