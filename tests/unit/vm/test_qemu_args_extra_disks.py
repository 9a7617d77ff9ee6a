"""Extra disks on QEMU's command line (the test stage's raw results disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.vm.qemu_args import ExtraDisk, VmConfig, Wiring, build_argv

WIRING = Wiring(qmp_fd=7, status_fd=9, console_log=Path("/logs/console.log"))


def _pairs(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


def test_an_extra_disk_is_a_virtio_drive_the_guest_finds_by_serial() -> None:
    config = VmConfig(
        name="t",
        disk=Path("/store/disk.qcow2"),
        seed=Path("/work/seed.iso"),
        extra_disks=(ExtraDisk(Path("/work/results.img"), serial="klab-results"),),
    )

    argv = build_argv(config, WIRING)

    drives = _pairs(argv, "-drive")
    assert drives[-1] == "file=/work/results.img,format=raw,if=none,id=if-xdisk0"
    assert "virtio-blk-pci,drive=if-xdisk0,serial=klab-results" in _pairs(argv, "-device")


def test_extra_disks_come_after_the_boot_disk_and_the_seed() -> None:
    """The boot disk stays the first virtio disk (vda) whatever is added."""
    config = VmConfig(
        name="t",
        disk=Path("/store/disk.qcow2"),
        seed=Path("/work/seed.iso"),
        extra_disks=(
            ExtraDisk(Path("/work/a.img")),
            ExtraDisk(Path("/work/b.qcow2"), format="qcow2", readonly=True),
        ),
    )

    drives = _pairs(build_argv(config, WIRING), "-drive")

    assert [d.split(",")[0] for d in drives] == [
        "file=/store/disk.qcow2",
        "file=/work/seed.iso",
        "file=/work/a.img",
        "file=/work/b.qcow2",
    ]
    assert drives[3].endswith(",id=if-xdisk1,readonly=on")
    assert "format=qcow2" in drives[3]


def test_without_extra_disks_the_command_line_is_unchanged() -> None:
    plain = VmConfig(name="t", disk=Path("/d.qcow2"))
    assert not any("xdisk" in arg for arg in build_argv(plain, WIRING))


@pytest.mark.parametrize("serial", ["", "has space", "a,b", "x" * 21])
def test_a_serial_qemu_or_the_guest_cannot_take_is_refused(serial: str) -> None:
    with pytest.raises(UsageError, match="serial"):
        ExtraDisk(Path("/work/r.img"), serial=serial)


def test_a_comma_in_an_extra_disk_path_is_refused() -> None:
    with pytest.raises(UsageError, match="','"):
        ExtraDisk(Path("/work/a,b.img"))
