"""The bootstrap recipe without building: cache key, package list, mmdebstrap command, and
the files that make the tree boot like a cloud image."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from imagefactory.errors import UsageError
from imagefactory.fetch import bootstrap_files
from imagefactory.fetch.bootstrap import (
    BASE_PACKAGES,
    CUSTOMIZE_HOOK,
    bootstrap_key,
    mmdebstrap_argv,
    package_list,
)
from imagefactory.run import run
from imagefactory.spec.source import BootstrapSource

MIRROR = "http://mirror.example.org/debian"
DATE = "2026-09-12T07:55:41+00:00"
ROOT_UUID = "0f0e0d0c-0b0a-4908-8706-050403020100"


def source(**changes: object) -> BootstrapSource:
    fields: dict[str, object] = {
        "suite": "trixie",
        "components": ["main"],
        "packages": ["sudo", "ca-certificates"],
        "kernel": "linux-image-cloud-amd64",
    }
    fields.update(changes)
    return BootstrapSource.model_validate(fields)


def unchecked_source(**changes: object) -> BootstrapSource:
    """A source the spec model would refuse (tests/unit/spec pins that), to show the
    bootstrap's own guard still holds for callers that bypass the model."""
    valid = source()
    return BootstrapSource.model_construct(**{**valid.model_dump(), **changes})


def key(src: BootstrapSource, **changes: object) -> str:
    args: dict[str, object] = {
        "firmware": "bios",
        "mirror": MIRROR,
        "release_date": DATE,
        "size_bytes": 4 << 30,
    }
    args.update(changes)
    return bootstrap_key(src, **args)  # type: ignore[arg-type]


def test_key_is_stable_and_names_its_kind() -> None:
    first = key(source())
    assert first == key(source())
    assert first.startswith("bootstrap:") and len(first) == len("bootstrap:") + 64


def test_package_order_duplicates_and_mirror_slash_do_not_change_the_key() -> None:
    base = key(source())
    assert key(source(packages=["ca-certificates", "sudo", "sudo"])) == base
    assert key(source(), mirror=MIRROR + "/") == base


@pytest.mark.parametrize(
    ("src_changes", "key_changes"),
    [
        ({"suite": "forky"}, {}),
        ({"components": ["main", "contrib"]}, {}),
        ({"packages": ["sudo", "ca-certificates", "zfs-dkms"]}, {}),
        ({"kernel": "linux-image-amd64"}, {}),
        ({}, {"mirror": "http://other.example.org/debian"}),
        ({}, {"firmware": "uefi"}),
        ({}, {"size_bytes": 8 << 30}),
        ({}, {"release_date": "2026-11-15T09:00:00+00:00"}),
    ],
)
def test_every_input_changes_the_key(
    src_changes: dict[str, object], key_changes: dict[str, object]
) -> None:
    assert key(source(**src_changes), **key_changes) != key(source())


def test_package_list_has_kernel_base_and_spec_packages_once() -> None:
    packages = package_list(source(packages=["sudo", "zfs-dkms"]), firmware="bios")
    assert packages[0] == "linux-image-cloud-amd64"
    assert set(BASE_PACKAGES) <= set(packages)
    assert packages.count("sudo") == 1 and "zfs-dkms" in packages
    assert "ifupdown" not in packages
    assert "grub-efi-amd64-bin" not in packages
    assert "grub-efi-amd64-bin" in package_list(source(), firmware="uefi")


@pytest.mark.parametrize("bad", ["two words", "a,b", "", "-opt"])
def test_package_names_that_would_break_the_command_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="not a package name"):
        package_list(unchecked_source(packages=[bad]), firmware="bios")


def test_bad_suite_is_refused_before_anything_runs() -> None:
    with pytest.raises(UsageError, match="suite"):
        key(unchecked_source(suite="trixie; rm"))


def test_mmdebstrap_command_builds_a_lean_root_tree(tmp_path: Path) -> None:
    argv = mmdebstrap_argv(
        source(components=["main", "contrib"]),
        firmware="bios",
        mirror=MIRROR + "/",
        tree=tmp_path / "tree",
        early_overlay=tmp_path / "early",
    )
    assert argv[0] == "mmdebstrap"
    assert {"--mode=root", "--variant=apt", "--format=directory"} <= set(argv)
    assert "--components=main,contrib" in argv
    include = next(a for a in argv if a.startswith("--include="))
    assert "linux-image-cloud-amd64" in include.split("=", 1)[1].split(",")
    assert f"--essential-hook=sync-in {tmp_path / 'early'} /" in argv
    assert f"--customize-hook={CUSTOMIZE_HOOK}" in argv
    assert argv[-3:] == ["trixie", str(tmp_path / "tree"), MIRROR]


def test_paths_with_whitespace_are_refused_for_hooks(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="whitespace"):
        mmdebstrap_argv(
            source(),
            firmware="bios",
            mirror=MIRROR,
            tree=tmp_path / "my tree",
            early_overlay=tmp_path / "early",
        )


def test_customize_hook_is_executable_and_shellcheck_clean() -> None:
    assert CUSTOMIZE_HOOK.stat().st_mode & 0o111
    run(["shellcheck", CUSTOMIZE_HOOK])


def test_kernel_command_line_has_serial_console_and_panic_reboot() -> None:
    line = bootstrap_files.kernel_cmdline(ROOT_UUID)
    assert f"root=UUID={ROOT_UUID}" in line.split()
    # The serial console must be the last console= so /dev/console is what QEMU logs.
    consoles = [arg for arg in line.split() if arg.startswith("console=")]
    assert consoles[-1].startswith("console=ttyS0")
    assert "panic=-1" in line.split()


def test_extlinux_and_grub_boot_the_kernel_symlinks_with_that_command_line() -> None:
    cmdline = bootstrap_files.kernel_cmdline(ROOT_UUID)
    extlinux = bootstrap_files.extlinux_conf(ROOT_UUID)
    assert "LINUX /boot/vmlinuz\n" in extlinux
    assert "INITRD /boot/initrd.img\n" in extlinux
    assert f"APPEND {cmdline}\n" in extlinux
    assert "TIMEOUT 0" in extlinux
    grub = bootstrap_files.grub_cfg(ROOT_UUID)
    assert f"linux /boot/vmlinuz {cmdline}\n" in grub
    assert "initrd /boot/initrd.img" in grub
    embedded = bootstrap_files.grub_embedded_cfg(ROOT_UUID)
    assert f"--fs-uuid --set=root {ROOT_UUID}" in embedded


def test_kernel_packages_keep_the_symlinks_in_boot() -> None:
    conf = bootstrap_files.kernel_img_conf()
    assert "link_in_boot = yes" in conf and "do_symlinks = yes" in conf


def test_cloud_init_looks_only_for_nocloud() -> None:
    config = yaml.safe_load(bootstrap_files.cloud_cfg())
    assert config == {"datasource_list": ["NoCloud", "None"]}


def test_fstab_mounts_root_by_uuid_and_the_esp_only_for_uefi() -> None:
    assert bootstrap_files.fstab(ROOT_UUID, None).splitlines() == [
        f"UUID={ROOT_UUID}\t/\text4\trw,errors=remount-ro\t0\t1"
    ]
    uefi = bootstrap_files.fstab(ROOT_UUID, "ABCD-1234")
    assert "UUID=ABCD-1234\t/boot/efi\tvfat" in uefi
    assert "nofail" in uefi


def test_guest_files_differ_by_firmware() -> None:
    bios = bootstrap_files.guest_files(ROOT_UUID, None)
    uefi = bootstrap_files.guest_files(ROOT_UUID, "ABCD-1234")
    assert "boot/grub/grub.cfg" not in bios and "boot/grub/grub.cfg" in uefi
    assert bios["boot/extlinux/extlinux.conf"] == uefi["boot/extlinux/extlinux.conf"]
    assert "DHCP=yes" in bios[bootstrap_files.FALLBACK_NETWORK_PATH]
