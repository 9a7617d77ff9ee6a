"""QEMU's command line for a build or test VM, as an argument list.

The built-in arguments decide everything the factory relies on: the monitor and the status
channel (inherited socket fds, so there is no socket path to race for or to leave behind),
the serial console captured to a file, `-no-reboot` and panic-exits so a broken guest ends
the process instead of looping.  A spec's `extra_args` may add devices, but an option that
would replace one of these is an error, never a silent override.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imagefactory.errors import UsageError
from imagefactory.vm.firmware import UefiFirmware

Accel = Literal["kvm", "tcg"]
Firmware = Literal["bios", "uefi"]

STATUS_PORT_NAME = "org.imagefactory.status"
# Our device and chardev ids; extra arguments may not reuse the prefix.
ID_PREFIX = "if-"
MIB = 1024 * 1024
# QEMU's own default for the first user-mode NIC; a seed's network-config matches on it
# unless the boot chooses another (the test stage gives every clone its own).
DEFAULT_MAC = "52:54:00:12:34:56"

# Options the factory sets itself, and the spec field (or flag) that controls each one.
OWNED_OPTIONS: dict[str, str] = {
    "-machine": "spec.vm.machine",
    "-M": "spec.vm.machine",
    "-m": "spec.vm.memory",
    "-smp": "spec.vm.cpus",
    "-cpu": "spec.vm.cpu_model",
    "-accel": "the --accel option",
    "-enable-kvm": "the --accel option",
    "-bios": "spec.vm.firmware",
    "-pflash": "spec.vm.firmware",
    "-serial": "the console log (always captured)",
    "-mon": "the QMP monitor",
    "-qmp": "the QMP monitor",
    "-qmp-pretty": "the QMP monitor",
    "-monitor": "the QMP monitor",
    "-nographic": "the headless display",
    "-display": "the headless display",
    "-nodefaults": "the built-in device set",
    "-no-reboot": "the reboot policy (a reboot ends the VM)",
    "-no-shutdown": "the shutdown policy (QEMU must exit at guest poweroff)",
    "-action": "the reboot and panic policy",
    "-daemonize": "process control (QEMU must stay our child)",
    "-S": "process control (QEMU must stay our child)",
    "-name": "the VM name",
    "-pidfile": "process control (QEMU must stay our child)",
    "-snapshot": "the build disk (changes would be discarded)",
    "-runas": "process control (QEMU must stay our child)",
    "-run-with": "process control (QEMU must stay our child)",
}
# Options that take no value; every other option consumes the next argument.
_FLAG_OPTIONS = {
    "-nographic", "-no-reboot", "-no-shutdown", "-S", "-snapshot", "-enable-kvm",
    "-nodefaults", "-daemonize", "-no-user-config", "-no-hpet", "-no-acpi", "-s",
    "-full-screen", "-usb", "-only-migratable", "-no-fd-bootchk", "-qmp-pretty", "-version",
}  # fmt: skip


_SERIAL = re.compile(r"[A-Za-z0-9_-]{1,20}")


@dataclass(frozen=True)
class ExtraDisk:
    """A further virtio disk, e.g. the test stage's raw results disk.

    `serial` (at most 20 characters, virtio-blk's limit) lets the guest find the disk as
    /sys/block/vdX/serial or /dev/disk/by-id/virtio-<serial>, whatever its device name.
    """

    path: Path
    format: str = "raw"
    serial: str | None = None
    readonly: bool = False

    def __post_init__(self) -> None:
        if "," in str(self.path):
            raise UsageError("extra disk paths must not contain ','")
        if self.serial is not None and not _SERIAL.fullmatch(self.serial):
            raise UsageError(f"extra disk serial {self.serial!r}: 1-20 letters, digits, '_' or '-'")


@dataclass(frozen=True)
class VmConfig:
    """What to boot and how: plain values, so argv building is testable without a spec."""

    name: str
    disk: Path
    disk_format: str = "qcow2"
    seed: Path | None = None
    memory: int = 2048 * MIB
    cpus: int = 2
    machine: str = "q35"
    cpu_model: str = "max"
    firmware: Firmware = "bios"
    accel: Accel = "tcg"
    mac: str = DEFAULT_MAC
    ssh_port: int | None = None
    extra_args: tuple[str, ...] = ()
    boot_timeout: float = 1800.0
    extra_disks: tuple[ExtraDisk, ...] = ()

    def __post_init__(self) -> None:
        if self.memory % MIB or self.memory < 256 * MIB:
            raise UsageError(f"VM memory must be a whole number of MiB >= 256MiB: {self.memory}")
        if self.cpus < 1:
            raise UsageError(f"VM cpus must be at least 1: {self.cpus}")
        if "," in str(self.disk) or (self.seed is not None and "," in str(self.seed)):
            # QEMU would read a comma in a path as an option separator.
            raise UsageError("disk and seed paths must not contain ','")
        check_extra_args(self.extra_args)


@dataclass(frozen=True)
class Wiring:
    """The per-process pieces a Machine provides: inherited fds and files in its own dirs."""

    qmp_fd: int
    status_fd: int
    console_log: Path
    uefi: UefiFirmware | None = None
    uefi_vars: Path | None = None
    extra_fds: tuple[int, ...] = field(default_factory=tuple)


def _normalise(option: str) -> str:
    return "-" + option.lstrip("-")


def split_options(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """Pair each option with its value, as QEMU parses its command line."""
    pairs: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("-") or token == "-":
            raise UsageError(
                f"spec.vm.extra_args: {token!r} is not an option",
                hint="extra_args is a list of QEMU arguments: [-device, 'virtio-rng-pci']",
            )
        option = _normalise(token)
        if option in _FLAG_OPTIONS:
            pairs.append((option, None))
            i += 1
            continue
        if i + 1 >= len(args):
            raise UsageError(f"spec.vm.extra_args: {token} needs a value")
        pairs.append((option, args[i + 1]))
        i += 2
    return pairs


def check_extra_args(args: Sequence[str]) -> None:
    """Extra arguments may add to the VM, never replace what the factory sets."""
    for option, value in split_options(args):
        owner = OWNED_OPTIONS.get(option)
        if owner is not None:
            raise UsageError(
                f"spec.vm.extra_args: {option} conflicts with {owner}",
                hint="set it through the spec field instead; extra_args only adds devices",
            )
        if option == "-drive" and value is not None and "if=pflash" in value.split(","):
            raise UsageError(
                "spec.vm.extra_args: a pflash drive conflicts with spec.vm.firmware",
                hint="set vm.firmware: uefi; the factory attaches OVMF itself",
            )
        if value is not None and any(
            part.startswith(("id=" + ID_PREFIX, "node-name=" + ID_PREFIX))
            for part in value.split(",")
        ):
            raise UsageError(
                f"spec.vm.extra_args: ids starting with {ID_PREFIX!r} are reserved: {value}"
            )


def accel_args(accel: Accel) -> list[str]:
    # Multi-threaded TCG: one host thread per vCPU, the only way TCG uses both cores.
    return ["-accel", "kvm"] if accel == "kvm" else ["-accel", "tcg,thread=multi"]


def _firmware_args(
    config: VmConfig, uefi: UefiFirmware | None, uefi_vars: Path | None
) -> list[str]:
    if config.firmware == "bios":
        return []
    if uefi is None or uefi_vars is None:
        raise UsageError("UEFI firmware requested but no OVMF files were provided")
    return [
        "-drive",
        f"if=pflash,unit=0,format={uefi.code_format},readonly=on,file={uefi.code}",
        "-drive",
        f"if=pflash,unit=1,format={uefi.vars_format},file={uefi_vars}",
    ]


def _network_args(config: VmConfig) -> list[str]:
    nic = f"user,id={ID_PREFIX}net,model=virtio-net-pci,mac={config.mac}"
    if config.ssh_port is not None:
        nic += f",hostfwd=tcp:127.0.0.1:{config.ssh_port}-:22"
    return ["-nic", nic]


def _extra_disk_args(index: int, disk: ExtraDisk) -> list[str]:
    drive = f"file={disk.path},format={disk.format},if=none,id={ID_PREFIX}xdisk{index}"
    if disk.readonly:
        drive += ",readonly=on"
    device = f"virtio-blk-pci,drive={ID_PREFIX}xdisk{index}"
    if disk.serial is not None:
        device += f",serial={disk.serial}"
    return ["-drive", drive, "-device", device]


def _machine_args(config: VmConfig) -> list[str]:
    return [
        "-name", f"{config.name},debug-threads=on",
        "-machine", config.machine,
        *accel_args(config.accel),
        "-cpu", config.cpu_model,
        "-smp", str(config.cpus),
        "-m", str(config.memory // MIB),
        # No default devices, no default monitor on stdio, no window: everything is explicit.
        "-nodefaults", "-no-user-config", "-display", "none",
    ]  # fmt: skip


def _hardware_args(
    config: VmConfig, uefi: UefiFirmware | None, uefi_vars: Path | None
) -> list[str]:
    """Firmware, disks, NIC and devices: what the guest sees, the same for every caller."""
    argv = [
        *_firmware_args(config, uefi, uefi_vars),
        "-drive",
        f"file={config.disk},format={config.disk_format},if=none,id={ID_PREFIX}disk,"
        "discard=unmap,detect-zeroes=unmap",
        "-device", f"virtio-blk-pci,drive={ID_PREFIX}disk,bootindex=0",
    ]  # fmt: skip
    if config.seed is not None:
        argv += [
            "-drive",
            f"file={config.seed},format=raw,if=none,id={ID_PREFIX}seed,readonly=on",
            "-device", f"virtio-blk-pci,drive={ID_PREFIX}seed",
        ]  # fmt: skip
    for index, extra in enumerate(config.extra_disks):
        argv += _extra_disk_args(index, extra)
    argv += [
        *_network_args(config),
        "-device", f"virtio-rng-pci,id={ID_PREFIX}rng",
        # A guest kernel with the pvpanic driver reports panics: GUEST_PANICKED, then exit.
        "-device", f"pvpanic,id={ID_PREFIX}panic",
    ]  # fmt: skip
    return argv


def build_argv(config: VmConfig, wiring: Wiring, *, qemu: str = "qemu-system-x86_64") -> list[str]:
    """The full argument list; `extra_args` come last so they only add."""
    argv = [
        qemu,
        *_machine_args(config),
        "-no-reboot",
        "-action", "panic=exit-failure",
        # Start paused: the host subscribes to events before the guest runs.
        "-S",
        "-chardev", f"socket,id={ID_PREFIX}qmp,fd={wiring.qmp_fd}",
        "-mon", f"chardev={ID_PREFIX}qmp,mode=control",
        "-chardev", f"file,id={ID_PREFIX}console,path={wiring.console_log}",
        "-serial", f"chardev:{ID_PREFIX}console",
        "-device", f"virtio-serial-pci,id={ID_PREFIX}vser",
        "-chardev", f"socket,id={ID_PREFIX}status,fd={wiring.status_fd}",
        "-device",
        f"virtserialport,bus={ID_PREFIX}vser.0,chardev={ID_PREFIX}status,"
        f"name={STATUS_PORT_NAME},id={ID_PREFIX}status-port",
        *_hardware_args(config, wiring.uefi, wiring.uefi_vars),
    ]  # fmt: skip
    return [*argv, *config.extra_args]


def console_argv(
    config: VmConfig,
    *,
    uefi: UefiFirmware | None = None,
    uefi_vars: Path | None = None,
    qemu: str = "qemu-system-x86_64",
) -> list[str]:
    """The same VM for a person at a terminal (a kept test clone): the machine and hardware
    of `build_argv`, with the serial console and QEMU's monitor on stdio (Ctrl-A C) instead
    of the factory's inherited channels, and the guest free to reboot."""
    argv = [
        qemu,
        *_machine_args(config),
        "-serial", "mon:stdio",
        *_hardware_args(config, uefi, uefi_vars),
    ]  # fmt: skip
    return [*argv, *config.extra_args]
