"""Tiny boot-sector guests for testing the Machine in a second instead of a minute.

Each is a 1 MiB raw disk (SeaBIOS will not boot a one-sector disk) whose boot sector prints
a line on COM1 and then either powers off through the ACPI PM1a control port that SeaBIOS
sets up on q35 (0x604) -- a guest that shuts down by itself -- or halts forever, a guest
that ignores the power button.
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.vm.accel import probe_sector

MARKER = b"IF-PAYLOAD"


def _real_mode_print(text: bytes) -> bytes:
    code = bytearray()
    for ch in text:
        code += bytes([0xBA, 0xF8, 0x03, 0xB0, ch, 0xEE])  # mov dx,0x3f8; mov al,ch; out dx,al
    return bytes(code)


def poweroff_sector() -> bytes:
    code = _real_mode_print(MARKER + b"\r\n")
    code += bytes([0xBA, 0x04, 0x06])  # mov dx, 0x604 (PM1a_CNT)
    code += bytes([0xB8, 0x00, 0x20])  # mov ax, SLP_EN | SLP_TYP(S5=0)
    code += bytes([0xEF])  # out dx, ax
    code += bytes([0xFA, 0xF4, 0xEB, 0xFD])  # cli; hlt; jmp back to hlt
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def _disk(path: Path, sector: bytes) -> Path:
    with path.open("wb") as image:
        image.write(sector)
        image.truncate(1024 * 1024)
    return path


def poweroff_disk(directory: Path) -> Path:
    """Prints IF-PAYLOAD, then powers the VM off (SHUTDOWN reason guest-shutdown)."""
    return _disk(directory / "poweroff.img", poweroff_sector())


def halt_disk(directory: Path) -> Path:
    """The accelerator probe: prints its marker in long mode, then halts forever."""
    return _disk(directory / "halt.img", probe_sector())
