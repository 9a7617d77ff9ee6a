"""DKMS modules of bootstrap packages are built for the image's kernel, or the build fails.

acpi-call-dkms stands in for zfs-dkms: the same DKMS mechanism, but one small C file
instead of an eight-minute compile.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagefactory.errors import CommandError
from imagefactory.fetch.bootstrap import build_bootstrap_image
from imagefactory.run import run
from tests.fixtures.guest_images import guest_image, guest_source, raw_copy

pytestmark = [pytest.mark.root, pytest.mark.timeout(3600)]

DKMS_PACKAGE = "acpi-call-dkms"


def loop_devices() -> set[str]:
    return set(run(["losetup", "--list", "--noheadings", "--output", "NAME"]).stdout.split())


def test_dkms_module_is_built_for_the_image_kernel_not_the_host(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    image = guest_image(["linux-headers-cloud-amd64", DKMS_PACKAGE])
    disk = raw_copy(image, tmp_path_factory.mktemp("dkms"))
    kernel = disk.symlink("/boot/vmlinuz").removeprefix("vmlinuz-")
    assert disk.ls("/usr/lib/modules") == [".", "..", kernel]
    modules = disk.ls(f"/usr/lib/modules/{kernel}/updates/dkms")
    assert any(name.startswith("acpi_call.ko") for name in modules), modules
    assert os.uname().release not in disk.ls("/usr/lib/modules")


def test_a_dkms_module_that_cannot_be_built_fails_the_build_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("building a bootstrap image needs root")
    # No linux-headers package: DKMS cannot build acpi_call for the image's kernel.
    source = guest_source([DKMS_PACKAGE])
    out = tmp_path / "image.qcow2"
    work = tmp_path / "work"
    loops_before = loop_devices()
    with pytest.raises(CommandError) as info:
        build_bootstrap_image(source, out, firmware="bios", size_bytes=2 << 30, workdir=work)
    message = str(info.value)
    assert "DKMS module acpi-call/" in message
    assert "is not built for the image kernel" in message
    assert not out.exists()
    assert list(work.iterdir()) == []
    assert loop_devices() == loops_before
