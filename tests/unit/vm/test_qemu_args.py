"""QEMU's argument list: what the factory always sets, and extra arguments that only add."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.vm.firmware import UefiFirmware
from imagefactory.vm.qemu_args import (
    STATUS_PORT_NAME,
    VmConfig,
    Wiring,
    build_argv,
    check_extra_args,
    split_options,
)

WIRING = Wiring(qmp_fd=7, status_fd=9, console_log=Path("/logs/console.log"))


def config(**overrides: object) -> VmConfig:
    values: dict[str, object] = {
        "name": "t",
        "disk": Path("/store/disk.qcow2"),
        "seed": Path("/work/seed.iso"),
    }
    values.update(overrides)
    return VmConfig(**values)  # type: ignore[arg-type]


def option_values(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == option]


def test_builtin_arguments() -> None:
    argv = build_argv(config(memory=4096 * 1024 * 1024, cpus=3), WIRING, qemu="/usr/bin/qemu")
    assert argv[0] == "/usr/bin/qemu"
    assert option_values(argv, "-machine") == ["q35"]
    assert option_values(argv, "-m") == ["4096"]
    assert option_values(argv, "-smp") == ["3"]
    assert option_values(argv, "-cpu") == ["max"]
    assert option_values(argv, "-accel") == ["tcg,thread=multi"]
    assert option_values(argv, "-display") == ["none"]
    for flag in ("-nodefaults", "-no-reboot", "-S"):
        assert flag in argv
    assert option_values(argv, "-action") == ["panic=exit-failure"]


def test_monitor_and_status_channel_use_inherited_fds() -> None:
    argv = build_argv(config(), WIRING)
    chardevs = option_values(argv, "-chardev")
    assert "socket,id=if-qmp,fd=7" in chardevs
    assert "socket,id=if-status,fd=9" in chardevs
    assert option_values(argv, "-mon") == ["chardev=if-qmp,mode=control"]
    assert any(f"name={STATUS_PORT_NAME}" in d for d in option_values(argv, "-device"))


def test_serial_console_is_always_captured_to_the_log_file() -> None:
    argv = build_argv(config(), WIRING)
    assert "file,id=if-console,path=/logs/console.log" in option_values(argv, "-chardev")
    assert option_values(argv, "-serial") == ["chardev:if-console"]


def test_disk_is_virtio_and_seed_a_read_only_second_disk() -> None:
    argv = build_argv(config(), WIRING)
    drives = option_values(argv, "-drive")
    assert drives[0].startswith("file=/store/disk.qcow2,format=qcow2,if=none,id=if-disk")
    assert drives[1] == "file=/work/seed.iso,format=raw,if=none,id=if-seed,readonly=on"
    devices = option_values(argv, "-device")
    assert "virtio-blk-pci,drive=if-disk,bootindex=0" in devices
    assert "virtio-blk-pci,drive=if-seed" in devices


def test_without_seed_there_is_one_drive() -> None:
    assert len(option_values(build_argv(config(seed=None), WIRING), "-drive")) == 1


def test_user_networking_with_the_seeds_mac_and_optional_ssh_forward() -> None:
    argv = build_argv(config(mac="52:54:00:00:00:01", ssh_port=2222), WIRING)
    assert option_values(argv, "-nic") == [
        "user,id=if-net,model=virtio-net-pci,mac=52:54:00:00:00:01,hostfwd=tcp:127.0.0.1:2222-:22"
    ]


def test_kvm_uses_the_kvm_accelerator() -> None:
    assert option_values(build_argv(config(accel="kvm"), WIRING), "-accel") == ["kvm"]


def test_uefi_attaches_read_only_code_and_a_private_vars_copy() -> None:
    firmware = UefiFirmware(Path("/fw/CODE.fd"), Path("/fw/VARS.fd"))
    wiring = Wiring(7, 9, Path("/l/c.log"), uefi=firmware, uefi_vars=Path("/tmp/vm/vars.fd"))
    drives = option_values(build_argv(config(firmware="uefi"), wiring), "-drive")
    assert "if=pflash,unit=0,format=raw,readonly=on,file=/fw/CODE.fd" in drives
    assert "if=pflash,unit=1,format=raw,file=/tmp/vm/vars.fd" in drives


def test_uefi_without_firmware_files_is_an_error() -> None:
    with pytest.raises(UsageError, match="UEFI"):
        build_argv(config(firmware="uefi"), WIRING)


def test_bios_has_no_pflash() -> None:
    assert not any("pflash" in d for d in option_values(build_argv(config(), WIRING), "-drive"))


def test_extra_arguments_are_appended_after_the_builtin_ones() -> None:
    extra = ("-device", "virtio-balloon-pci", "-smbios", "type=1,serial=abc")
    argv = build_argv(config(extra_args=extra), WIRING)
    assert tuple(argv[-4:]) == extra
    assert argv.count("-machine") == 1


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["-m", "8G"], "spec.vm.memory"),
        (["-machine", "pc"], "spec.vm.machine"),
        (["-M", "pc"], "spec.vm.machine"),
        (["--machine", "pc"], "spec.vm.machine"),
        (["-smp", "4"], "spec.vm.cpus"),
        (["-cpu", "host"], "spec.vm.cpu_model"),
        (["-enable-kvm"], "--accel"),
        (["-serial", "stdio"], "console log"),
        (["-qmp", "unix:/x"], "QMP"),
        (["-nographic"], "display"),
        (["-no-shutdown"], "shutdown policy"),
        (["-snapshot"], "discarded"),
        (["-daemonize"], "our child"),
        (["-bios", "x.bin"], "spec.vm.firmware"),
    ],
)
def test_an_extra_argument_that_replaces_a_builtin_one_is_an_error(
    extra: list[str], field: str
) -> None:
    with pytest.raises(UsageError, match="conflicts with") as info:
        config(extra_args=tuple(extra))
    assert field in str(info.value)


def test_a_pflash_drive_in_extra_arguments_conflicts_with_firmware() -> None:
    with pytest.raises(UsageError, match="pflash"):
        check_extra_args(["-drive", "if=pflash,file=/x.fd"])


def test_extra_arguments_may_not_reuse_reserved_ids() -> None:
    with pytest.raises(UsageError, match="reserved"):
        check_extra_args(["-device", "virtio-rng-pci,id=if-rng"])


def test_extra_arguments_must_be_options_with_their_values() -> None:
    with pytest.raises(UsageError, match="is not an option"):
        check_extra_args(["virtio-rng-pci"])
    with pytest.raises(UsageError, match="needs a value"):
        check_extra_args(["-device"])


def test_options_are_paired_with_values_and_flags_stand_alone() -> None:
    assert split_options(["-usb", "-device", "x,id=a", "--global", "k=v"]) == [
        ("-usb", None),
        ("-device", "x,id=a"),
        ("-global", "k=v"),
    ]


def test_memory_and_paths_are_validated() -> None:
    with pytest.raises(UsageError, match="MiB"):
        config(memory=1000)
    with pytest.raises(UsageError, match="','"):
        config(disk=Path("/a,b.qcow2"))
