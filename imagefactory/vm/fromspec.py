"""Thin adapters from a distro spec to the plain values the vm package works with.

Everything else in `imagefactory.vm` takes dataclasses (VmConfig, HookPlan, ...), so it can
be tested without a spec; this module is the one place that knows the spec's field names.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imagefactory.paths import cloud_init_dir, hooks_dir
from imagefactory.spec import DistroSpec, Lineage
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.qemu_args import Accel, VmConfig
from imagefactory.vm.seed import DEFAULT_MAC, SeedFiles, SshKeyPair, build_seed
from imagefactory.vm.userdata import resolve_fragments


def hook_plan(spec: DistroSpec, kind: Lineage, *, root: Path | None = None) -> HookPlan:
    """The hooks a spec names for one lineage, read from the repository's hooks/ directory."""
    base = root if root is not None else hooks_dir()
    return HookPlan.of(
        Hook.from_file(base / entry.script, timeout=float(entry.timeout), env=dict(entry.env))
        for entry in spec.hooks.for_lineage(kind)
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
) -> VmConfig:
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
        boot_timeout=float(vm.boot_timeout),
    )


def seed_files(
    spec: DistroSpec,
    plan: HookPlan,
    key: SshKeyPair,
    *,
    mac: str = DEFAULT_MAC,
    poweroff: bool = True,
    cloud_init_root: Path | None = None,
    hooks_root: Path | None = None,
    extra_fragments: Sequence[Path] = (),
) -> SeedFiles:
    """The NoCloud seed of one build boot of `spec`."""
    fragments = resolve_fragments(spec.cloud_init.fragments, cloud_init_root or cloud_init_dir())
    return build_seed(
        name=spec.name,
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
