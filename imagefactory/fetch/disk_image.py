"""Turn a root tree into a bootable GPT disk image: partitions, filesystems, boot loader.

Built for hosts like the CI machines: loop devices work but their partition nodes never
appear, and vfat cannot be mounted.  So nothing here relies on ``loopNpM``: filesystems are
written straight into the image at their partition's offset (``mke2fs -d -E offset=``,
``mkfs.vfat --offset`` plus mtools), and the one step that needs a mounted filesystem -
``extlinux --install`` - uses an offset loop device bounded with ``--sizelimit`` (without it
the kernel sees a filesystem larger than its partition).

Every loop device and mount is undone in ``finally`` blocks, so a failure or Ctrl-C never
leaves one behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.run import require_tool, run

log = structlog.get_logger(__name__)

Firmware = Literal["bios", "uefi"]

SECTOR = 512
MIB = 1024 * 1024
#: Room for the GPT and alignment of the first partition, as vendor images do.
FIRST_PARTITION_OFFSET = MIB
#: The ESP holds only GRUB's EFI binary (a few MiB); sparse, so its size costs nothing.
ESP_BYTES = 63 * MIB
#: Smallest disk we build; a lean Debian root needs ~400 MiB.
MIN_DISK_BYTES = 512 * MIB
EXT4_BLOCK = 4096
#: GPT backup header and entries at the end of the disk (33 sectors), rounded up.
GPT_TAIL_BYTES = 34 * SECTOR

ROOT_PARTITION = 1
ESP_PARTITION = 15
#: sgdisk type codes: Linux x86-64 root (systemd's discoverable partitions) and the ESP.
ROOT_TYPE = "8304"
ESP_TYPE = "EF00"
#: GPT attribute bit 2: "legacy BIOS bootable", the partition gptmbr.bin chain-loads.
LEGACY_BIOS_BOOTABLE_BIT = 2

GPTMBR_PATHS = (
    Path("/usr/lib/syslinux/mbr/gptmbr.bin"),
    Path("/usr/lib/EXTLINUX/gptmbr.bin"),
)
#: Boot code area of the MBR; the partition entries after it must survive.
MBR_BOOT_CODE_BYTES = 440


@dataclass(frozen=True)
class Partition:
    """A partition's place on the disk, in bytes (both multiples of 1 MiB)."""

    number: int
    start: int
    size: int
    type_code: str
    name: str
    legacy_bios_bootable: bool = False

    @property
    def start_sector(self) -> int:
        return self.start // SECTOR

    @property
    def end_sector(self) -> int:
        """Inclusive last sector, as sgdisk wants it."""
        return (self.start + self.size) // SECTOR - 1


@dataclass(frozen=True)
class DiskLayout:
    """The whole disk: a root partition, and an ESP before it when the firmware is UEFI."""

    size_bytes: int
    root: Partition
    esp: Partition | None


def plan_layout(size_bytes: int, *, firmware: Firmware) -> DiskLayout:
    """Place the partitions: [ESP (uefi only)] then root, which takes the rest of the disk.

    The root partition is last so that cloud-init's growpart can extend it when the disk is
    grown; it is partition 1 and the ESP partition 15, as in Debian's own cloud images.
    """
    if size_bytes < MIN_DISK_BYTES:
        raise UsageError(
            f"disk size {size_bytes} bytes is too small for a bootstrap image",
            hint=f"use at least {MIN_DISK_BYTES // MIB} MiB",
        )
    if size_bytes % SECTOR:
        raise UsageError(f"disk size {size_bytes} is not a multiple of {SECTOR} bytes")
    esp: Partition | None = None
    root_start = FIRST_PARTITION_OFFSET
    if firmware == "uefi":
        esp = Partition(ESP_PARTITION, FIRST_PARTITION_OFFSET, ESP_BYTES, ESP_TYPE, "esp")
        root_start = esp.start + esp.size
    usable_end = size_bytes - GPT_TAIL_BYTES
    root_size = (usable_end - root_start) // MIB * MIB
    root = Partition(
        ROOT_PARTITION, root_start, root_size, ROOT_TYPE, "root", legacy_bios_bootable=True
    )
    return DiskLayout(size_bytes=size_bytes, root=root, esp=esp)


def find_gptmbr() -> Path:
    """syslinux's GPT-aware MBR boot code, from the host's syslinux-common/extlinux."""
    for path in GPTMBR_PATHS:
        if path.is_file():
            return path
    raise InfrastructureError(
        "syslinux's gptmbr.bin is not installed",
        hint="install it: apt-get install syslinux-common extlinux",
    )


def create_partitioned_disk(raw: Path, layout: DiskLayout) -> None:
    """A sparse raw file with a fresh GPT and syslinux's MBR boot code."""
    require_tool("sgdisk", package="gdisk")
    with raw.open("wb") as f:
        f.truncate(layout.size_bytes)
    argv: list[str | Path] = ["sgdisk", "--clear"]
    for part in (layout.esp, layout.root):
        if part is None:
            continue
        argv += [
            f"--new={part.number}:{part.start_sector}:{part.end_sector}",
            f"--typecode={part.number}:{part.type_code}",
            f"--change-name={part.number}:{part.name}",
        ]
        if part.legacy_bios_bootable:
            argv.append(f"--attributes={part.number}:set:{LEGACY_BIOS_BOOTABLE_BIT}")
    run([*argv, raw], hint="sgdisk could not write the partition table")
    boot_code = find_gptmbr().read_bytes()[:MBR_BOOT_CODE_BYTES]
    with raw.open("r+b") as f:
        f.write(boot_code)


def tree_bytes(tree: Path) -> int:
    """Disk space the tree's files take (allocated blocks, hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in (*dirnames, *filenames):
            st = (Path(dirpath) / name).lstat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def make_root_filesystem(raw: Path, part: Partition, tree: Path, *, uuid: str) -> None:
    """ext4 in the root partition, populated from `tree` (ownership, modes, xattrs kept)."""
    require_tool("mke2fs", package="e2fsprogs")
    needed = tree_bytes(tree)
    # ext4 metadata (journal, inode tables) plus 5 % reserved: keep a generous margin.
    if needed * 1.25 + 128 * MIB > part.size:
        raise UsageError(
            f"the root tree needs about {needed // MIB} MiB but the root partition has "
            f"{part.size // MIB} MiB",
            hint="give the bootstrap image a larger disk size",
        )
    run(
        [
            "mke2fs",
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            str(EXT4_BLOCK),
            "-L",
            "root",
            "-U",
            uuid,
            "-d",
            tree,
            "-E",
            f"offset={part.start},nodiscard",
            raw,
            str(part.size // EXT4_BLOCK),
        ],
        hint="mke2fs could not build the root filesystem from the bootstrap tree",
    )


def make_esp(raw: Path, part: Partition, files: Mapping[str, Path], *, volume_id: str) -> None:
    """FAT32 in the ESP and copy `files` (ESP path -> host file) into it, never mounting it.

    512-byte clusters keep FAT32 valid at this small size (mtools refuses a FAT32 with too
    few clusters).
    """
    require_tool("mkfs.vfat", package="dosfstools")
    require_tool("mcopy", package="mtools")
    run(
        [
            "mkfs.vfat",
            "-F",
            "32",
            "-s",
            "1",
            "-S",
            str(SECTOR),
            "-n",
            "ESP",
            "-i",
            volume_id,
            f"--offset={part.start_sector}",
            raw,
            str(part.size // 1024),
        ],
        hint="mkfs.vfat could not build the EFI system partition",
    )
    image = f"{raw}@@{part.start}"
    made: set[str] = set()
    for dest, source in sorted(files.items()):
        parts = dest.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory not in made:
                run(["mmd", "-i", image, f"::/{directory}"])
                made.add(directory)
        run(["mcopy", "-i", image, source, f"::/{'/'.join(parts)}"])


@contextlib.contextmanager
def offset_loop_device(
    image: Path, *, offset: int, size: int, read_only: bool = False
) -> Iterator[Path]:
    """A loop device over [offset, offset+size) of `image`; detached on exit, whatever happens."""
    require_tool("losetup", package="mount")
    argv: list[str | Path] = ["losetup", "--find", "--show", f"--offset={offset}"]
    argv += [f"--sizelimit={size}"]
    if read_only:
        argv.append("--read-only")
    proc = run([*argv, image], hint="loop devices need root and a free /dev/loop*")
    device = Path(proc.stdout.strip())
    try:
        yield device
    finally:
        _retry_command(["losetup", "--detach", str(device)], what=f"detach {device}")


@contextlib.contextmanager
def mounted(device: Path, mountpoint: Path, *, read_only: bool = False) -> Iterator[Path]:
    """Mount an ext4 `device` on `mountpoint` for the duration of the block."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    options = "ro,noload" if read_only else "rw"
    run(["mount", "-t", "ext4", "-o", options, device, mountpoint])
    try:
        yield mountpoint
    finally:
        _retry_command(["umount", str(mountpoint)], what=f"unmount {mountpoint}")


def _retry_command(argv: list[str], *, what: str, attempts: int = 5) -> None:
    """Cleanup commands can hit a briefly busy device (udev probing it): retry, then fail."""
    for attempt in range(attempts):
        proc = run(argv, check=False)
        if proc.returncode == 0:
            return
        log.warning("disk.cleanup.retry", what=what, attempt=attempt + 1, stderr=proc.stderr)
        time.sleep(0.5 * (attempt + 1))
    raise InfrastructureError(f"could not {what}", hint="check `losetup -a` and `findmnt`")


def install_extlinux(raw: Path, part: Partition, *, mountpoint: Path) -> None:
    """Install extlinux into /boot/extlinux of the root partition (its config already there).

    extlinux patches the partition's boot sector with the block list of ldlinux.sys, so it
    needs the filesystem mounted; the offset loop device stands in for the partition node.
    """
    extlinux = require_tool("extlinux", package="extlinux")
    with (
        offset_loop_device(raw, offset=part.start, size=part.size) as device,
        mounted(device, mountpoint) as root,
    ):
        target = root / "boot" / "extlinux"
        if not (target / "extlinux.conf").is_file():
            raise InfrastructureError(f"no extlinux.conf in {target} of the image")
        run([extlinux, "--install", target], hint="extlinux could not install itself")


def convert_to_qcow2(raw: Path, out: Path, *, compress: bool) -> None:
    """Write `raw` as qcow2 (zero clusters skipped; compressed clusters when asked)."""
    require_tool("qemu-img", package="qemu-utils")
    argv: list[str | Path] = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2"]
    if compress:
        argv.append("-c")
    run([*argv, raw, out], hint="qemu-img could not write the qcow2 image")


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    resolved = path.resolve()
    found: list[Path] = []
    with Path("/proc/self/mountinfo").open() as f:
        for line in f:
            field = line.split()[4]
            mountpoint = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field))
            if mountpoint == resolved or resolved in mountpoint.parents:
                found.append(mountpoint)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def processes_inside(path: Path) -> list[int]:
    """PIDs of processes chrooted at or below `path`, or naming it on their command line.

    Those are what is left of a build whose work directory is `path` (a unique mkdtemp
    name): mmdebstrap's helpers and the dpkg/maintainer scripts running in its chroot.
    """
    resolved = str(path.resolve())
    needle = resolved.encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            root = str((entry / "root").readlink())
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile, a zombie, or not ours to inspect
            continue
        if root == resolved or root.startswith(resolved + "/") or needle in cmdline:
            found.append(int(entry.name))
    return found


def kill_processes_inside(path: Path, *, attempts: int = 50) -> None:
    """SIGKILL every process `processes_inside(path)` finds, until none is left.

    Needed when only we got the Ctrl-C (or an exception ended the wait): `run` then kills
    mmdebstrap itself, but its forked helpers and the chroot's dpkg keep writing into the
    tree and keep its /proc and /dev mounts busy.
    """
    for _ in range(attempts):
        pids = processes_inside(path)
        if not pids:
            return
        for pid in pids:
            log.warning("disk.cleanup.kill", pid=pid, path=str(path))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise InfrastructureError(f"processes keep running in {path}", hint=f"see `lsof +D {path}`")


def remove_tree(path: Path) -> None:
    """Delete a build's work directory: stop what still runs in it, unmount, then delete.

    A chroot can still hold /proc, /sys or /dev mounts after an interrupted mmdebstrap;
    deleting through those would delete host files, so we unmount first, and refuse to
    delete if anything stays mounted.
    """
    if not path.exists():
        return
    kill_processes_inside(path)
    for mountpoint in mounts_under(path):
        log.warning("disk.cleanup.stale_mount", mountpoint=str(mountpoint))
        proc = run(["umount", "--recursive", str(mountpoint)], check=False)
        if proc.returncode != 0:
            run(["umount", "--lazy", str(mountpoint)], check=False)
    remaining = mounts_under(path)
    if remaining:
        raise InfrastructureError(
            f"{remaining[0]} is still mounted; not deleting {path}",
            hint=f"unmount it by hand (umount -R {remaining[0]}), then delete {path}",
        )
    shutil.rmtree(path)
