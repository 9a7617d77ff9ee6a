"""UEFI firmware is found through QEMU's descriptors, never with Secure Boot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.errors import InfrastructureError
from imagefactory.vm.firmware import find_uefi_firmware


def descriptor(
    directory: Path,
    name: str,
    code: Path,
    *,
    features: tuple[str, ...] = (),
    machines: tuple[str, ...] = ("pc-q35-*",),
) -> None:
    code.write_bytes(b"code")
    nvram = code.with_name(code.stem + "_VARS.fd")
    nvram.write_bytes(b"vars")
    data = {
        "interface-types": ["uefi"],
        "mapping": {
            "device": "flash",
            "executable": {"filename": str(code), "format": "raw"},
            "nvram-template": {"filename": str(nvram), "format": "raw"},
        },
        "targets": [{"architecture": "x86_64", "machines": list(machines)}],
        "features": list(features),
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(json.dumps(data))


def test_secure_boot_builds_are_skipped(tmp_path: Path) -> None:
    dirs = tmp_path / "d"
    descriptor(dirs, "40-secure.json", tmp_path / "SECURE.fd", features=("secure-boot",))
    descriptor(dirs, "60-plain.json", tmp_path / "PLAIN.fd")
    found = find_uefi_firmware("q35", dirs=[dirs])
    assert found.code == tmp_path / "PLAIN.fd"
    assert found.vars_template == tmp_path / "PLAIN_VARS.fd"


def test_the_machine_type_must_be_a_target(tmp_path: Path) -> None:
    dirs = tmp_path / "d"
    descriptor(dirs, "50-i440fx.json", tmp_path / "PC.fd", machines=("pc-i440fx-*",))
    assert find_uefi_firmware("pc", dirs=[dirs]).code == tmp_path / "PC.fd"
    with pytest.raises(InfrastructureError, match="no UEFI firmware"):
        find_uefi_firmware("q35", dirs=[dirs])


def test_an_earlier_directory_hides_a_descriptor_of_the_same_name(tmp_path: Path) -> None:
    etc, share = tmp_path / "etc", tmp_path / "share"
    descriptor(etc, "60-x.json", tmp_path / "LOCAL.fd")
    descriptor(share, "60-x.json", tmp_path / "VENDOR.fd")
    assert find_uefi_firmware("q35", dirs=[etc, share]).code == tmp_path / "LOCAL.fd"


def test_descriptors_naming_missing_files_are_skipped(tmp_path: Path) -> None:
    dirs = tmp_path / "d"
    descriptor(dirs, "10-gone.json", tmp_path / "GONE.fd")
    (tmp_path / "GONE.fd").unlink()
    descriptor(dirs, "20-here.json", tmp_path / "HERE.fd")
    assert find_uefi_firmware("q35", dirs=[dirs]).code == tmp_path / "HERE.fd"


def test_host_ovmf_is_found_without_secure_boot() -> None:
    """On a host with OVMF installed (scripts/host-deps.sh), the real descriptors work."""
    try:
        found = find_uefi_firmware("q35")
    except InfrastructureError:
        pytest.skip("no OVMF installed on this host")
    assert found.code.is_file() and found.vars_template.is_file()
    assert "secboot" not in found.code.name and "Secure Boot" not in found.description.replace(
        "without Secure Boot", ""
    )
