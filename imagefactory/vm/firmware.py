"""Find UEFI firmware (OVMF) without Secure Boot through QEMU's firmware descriptors.

Distributions install OVMF under different names (Debian `OVMF_CODE_4M.fd`, Fedora
`edk2/ovmf/OVMF_CODE.fd`), but all of them describe their builds in the JSON descriptors of
QEMU's firmware interop spec.  Reading those instead of guessing paths finds the right file
on any host; Secure Boot must be off because DKMS-built ZFS modules are unsigned.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.errors import InfrastructureError

# Searched in this order; a file name in an earlier directory hides the same name later.
DESCRIPTOR_DIRS = (
    Path("/etc/qemu/firmware"),
    Path("/usr/share/qemu/firmware"),
)
_UNWANTED_FEATURES = {"secure-boot", "enrolled-keys", "requires-smm", "amd-sev-es", "intel-tdx"}
# QEMU's machine aliases and the versioned names the descriptors list.
_MACHINE_NAMES = {"q35": "pc-q35-99.0", "pc": "pc-i440fx-99.0"}


@dataclass(frozen=True)
class UefiFirmware:
    """The read-only code image and the template each VM copies for its own variable store."""

    code: Path
    vars_template: Path
    code_format: str = "raw"
    vars_format: str = "raw"
    description: str = ""


def _descriptors(dirs: Iterable[Path]) -> list[tuple[str, Path]]:
    chosen: dict[str, Path] = {}
    for directory in dirs:
        if not directory.is_dir():
            continue
        for path in directory.glob("*.json"):
            chosen.setdefault(path.name, path)
    return sorted(chosen.items())


def _suitable(data: dict[str, Any], machine: str) -> UefiFirmware | None:
    if "uefi" not in data.get("interface-types", []):
        return None
    if _UNWANTED_FEATURES & set(data.get("features", [])):
        return None
    mapping = data.get("mapping", {})
    if mapping.get("device") != "flash" or "nvram-template" not in mapping:
        return None
    versioned = _MACHINE_NAMES.get(machine, machine)
    if not any(
        target.get("architecture") == "x86_64"
        and any(fnmatch.fnmatch(versioned, pattern) for pattern in target.get("machines", []))
        for target in data.get("targets", [])
    ):
        return None
    code = mapping["executable"]
    nvram = mapping["nvram-template"]
    return UefiFirmware(
        code=Path(code["filename"]),
        vars_template=Path(nvram["filename"]),
        code_format=code.get("format", "raw"),
        vars_format=nvram.get("format", "raw"),
        description=data.get("description", ""),
    )


def find_uefi_firmware(
    machine: str = "q35", *, dirs: Iterable[Path] = DESCRIPTOR_DIRS
) -> UefiFirmware:
    """The first descriptor (by file name, as QEMU orders them) that fits; files must exist."""
    for _name, path in _descriptors(dirs):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        firmware = _suitable(data, machine) if isinstance(data, dict) else None
        if firmware and firmware.code.is_file() and firmware.vars_template.is_file():
            return firmware
    raise InfrastructureError(
        f"no UEFI firmware without Secure Boot found for machine {machine}",
        hint="install OVMF (Debian: apt-get install ovmf; Fedora/EL: dnf install edk2-ovmf)",
    )
