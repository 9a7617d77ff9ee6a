"""Read a disk image's partition table (GPT, or MBR) without tools or partition nodes.

Loop devices here get no partition nodes, so the host reaches a partition through an
offset loop device; that needs the offsets, which this reads from the raw bytes.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

SECTOR = 512
LINUX_DATA = uuid.UUID("0fc63daf-8483-4772-8e79-3d69d8477de4")
LINUX_ROOT_X86_64 = uuid.UUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709")
XBOOTLDR = uuid.UUID("bc13c2ff-59e6-4262-a352-b275fd6f7172")
ESP = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BIOS_BOOT = uuid.UUID("21686148-6449-6e69-6f6f-744964654e6f")
MBR_LINUX = 0x83


@dataclass(frozen=True)
class Partition:
    number: int
    offset: int
    size: int
    type_guid: uuid.UUID | None
    mbr_type: int | None
    name: str

    @property
    def may_hold_root(self) -> bool:
        """Linux data or root partitions (EL's separate /boot is also Linux data: probe it)."""
        if self.type_guid is not None:
            return self.type_guid in (LINUX_DATA, LINUX_ROOT_X86_64)
        return self.mbr_type == MBR_LINUX


def read_partitions(image: Path) -> list[Partition]:
    """Partitions of a raw image or block device; an empty list when there is no table."""
    with image.open("rb") as disk:
        mbr = disk.read(SECTOR)
        disk.seek(SECTOR)
        header = disk.read(92)
        if len(header) == 92 and header[:8] == b"EFI PART":
            entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
            disk.seek(entries_lba * SECTOR)
            table = disk.read(count * entry_size)
            return _gpt_entries(table, count, entry_size)
    return _mbr_entries(mbr)


def _gpt_entries(table: bytes, count: int, entry_size: int) -> list[Partition]:
    found = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if len(entry) < 128:
            break
        type_guid = uuid.UUID(bytes_le=entry[:16])
        if type_guid.int == 0:
            continue
        first, last = struct.unpack_from("<QQ", entry, 32)
        name = entry[56:128].decode("utf-16-le", errors="replace").rstrip("\0")
        found.append(
            Partition(index + 1, first * SECTOR, (last - first + 1) * SECTOR, type_guid, None, name)
        )
    return found


def _mbr_entries(mbr: bytes) -> list[Partition]:
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        return []
    found = []
    for index in range(4):
        entry = mbr[446 + index * 16 : 446 + (index + 1) * 16]
        kind = entry[4]
        start, sectors = struct.unpack_from("<II", entry, 8)
        if kind == 0 or sectors == 0 or kind == 0xEE:
            continue
        found.append(Partition(index + 1, start * SECTOR, sectors * SECTOR, None, kind, ""))
    return found
