"""The one adapter from a resolved spec to a boot: its hooks, its seed, its QEMU machine.

Everything else in `imagefactory.vm` takes dataclasses (VmConfig, HookPlan, SeedFiles), so it
can be tested without a spec; this module is the one place that knows the spec's field
names.  The build, `imagefactory seed` and the test stage all get their hook plan, seed and
VM configuration here -- which is why `imagefactory seed DISTRO --kind ztest` writes the very
seed a build boots with (the KLAB_* environment and the payloads included), apart from the
per-build SSH key and instance-id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagefactory.paths import cloud_init_dir, hooks_dir
from imagefactory.spec.hookenv import hook_environment
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.spec.model import DistroSpec
from imagefactory.vm.firmware import UefiFirmware, find_uefi_firmware
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.payload import with_payloads
from imagefactory.vm.qemu_args import DEFAULT_MAC, Accel, ExtraDisk, VmConfig
from imagefactory.vm.seed import SeedFiles, SshKeyPair, build_seed
from imagefactory.vm.userdata import resolve_fragments


def hook_plan(resolved: ResolvedSpec, *, root: Path | None = None) -> HookPlan:
    """The lineage's hooks as a build boots them: each with the common KLAB_* environment
    plus its own, and the payload files (bpftrace scripts, runfiles, recipes) it asks for."""
    base = root if root is not None else hooks_dir()
    common = hook_environment(resolved)
    plan = HookPlan.of(
        Hook.from_file(
            base / entry.script, timeout=float(entry.timeout), env={**common, **entry.env}
        )
        for entry in resolved.spec.hooks.for_lineage(resolved.lineage)
    )
    return with_payloads(plan, hooks_root=base)


def seed_files(
    spec: DistroSpec,
    plan: HookPlan,
    key: SshKeyPair,
    *,
    name: str | None = None,
    mac: str = DEFAULT_MAC,
    poweroff: bool = True,
    cloud_init_root: Path | None = None,
    hooks_root: Path | None = None,
    extra_fragments: Sequence[Path] = (),
) -> SeedFiles:
    """The NoCloud seed of one boot of `spec` running `plan`; `name` (default: the spec's)
    gives the host name and the instance-id's stem."""
    fragments = resolve_fragments(spec.cloud_init.fragments, cloud_init_root or cloud_init_dir())
    return build_seed(
        name=name or spec.name,
        default_user=spec.cloud_init.default_user.name,
        sudo=spec.cloud_init.default_user.sudo,
        key=key,
        hooks=plan,
        fragments=[*fragments, *extra_fragments],
        mac=mac,
        poweroff=poweroff,
        cloud_init_root=cloud_init_root,
        hooks_root=hooks_root,
    )


def vm_config(
    spec: DistroSpec,
    *,
    disk: Path,
    seed: Path | None,
    accel: Accel,
    disk_format: str = "qcow2",
    name: str | None = None,
    mac: str = DEFAULT_MAC,
    ssh_port: int | None = None,
    extra_disks: Sequence[ExtraDisk] = (),
    boot_timeout: float | None = None,
) -> VmConfig:
    """The VM that boots `disk`; `boot_timeout` (default: the spec's) bounds the whole boot."""
    vm = spec.vm
    return VmConfig(
        name=name or spec.name,
        disk=disk,
        disk_format=disk_format,
        seed=seed,
        memory=int(vm.memory),
        cpus=vm.cpus,
        machine=vm.machine,
        cpu_model=vm.cpu_model,
        firmware=vm.firmware,
        accel=accel,
        mac=mac,
        ssh_port=ssh_port,
        extra_args=tuple(vm.extra_args),
        boot_timeout=float(vm.boot_timeout) if boot_timeout is None else boot_timeout,
        extra_disks=tuple(extra_disks),
    )


def uefi_firmware(spec: DistroSpec) -> UefiFirmware | None:
    """The host's OVMF files for a UEFI spec (an error names what to install); None: BIOS."""
    return find_uefi_firmware(spec.vm.machine) if spec.vm.firmware == "uefi" else None
