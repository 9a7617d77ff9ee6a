"""Clones kept after a run (`klab test --keep`), how to reach them, and how they go away.

A kept clone is a powered-off copy of the golden as the tests left it.  Reaching it needs
what the run used: its disk, its MAC (cloud-init bound the network configuration to it) and
the run's SSH key, whose public half is in the default user's authorized_keys.  The stage
prints that as a ready QEMU command line and writes it to `kept-clone.txt` in the distro's
artifacts directory.

Forgotten clones: a clone's owner is the `klab test` process that made it.  Once that
process is gone and no process has the clone's disk open, nobody is using it, and
`klab gc` removes it (`forgotten_clones`).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import structlog

from imagefactory.spec.model import DistroSpec
from imagefactory.store.base import Clone, Store
from imagefactory.store.owner import owner_alive
from imagefactory.vm.firmware import UefiFirmware
from imagefactory.vm.qemu_args import MIB, accel_args

log = structlog.get_logger(__name__)

SSH_PORT = 2222
KEPT_FILE = "kept-clone.txt"


@dataclass(frozen=True)
class KeptClone:
    distro: str
    store: str
    clone: Clone
    mac: str
    memory_mib: int
    cpus: int
    machine: str
    ssh_key: Path | None
    user: str
    artifacts: Path
    uefi_code: Path | None = None
    uefi_vars: Path | None = None
    accel: str = "tcg"
    cpu_model: str = "max"

    def qemu_command(self, ssh_port: int = SSH_PORT) -> list[str]:
        argv = [
            "qemu-system-x86_64",
            "-machine", self.machine,
            *accel_args(self.accel),  # type: ignore[arg-type]
            "-cpu", self.cpu_model,
            "-smp", str(self.cpus),
            "-m", str(self.memory_mib),
            "-nographic",
            "-drive", f"file={self.clone.path},format={self.clone.format},if=virtio",
            "-nic", f"user,model=virtio-net-pci,mac={self.mac},"
            f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        ]  # fmt: skip
        if self.uefi_code is not None and self.uefi_vars is not None:
            argv += [
                "-drive", f"if=pflash,format=raw,readonly=on,file={self.uefi_code}",
                "-drive", f"if=pflash,format=raw,file={self.uefi_vars}",
            ]  # fmt: skip
        return argv

    def instructions(self, ssh_port: int = SSH_PORT) -> str:
        lines = [
            f"kept the clone of {self.distro}: {self.clone.name} ({self.store})",
            f"  boot it:  {shlex.join(self.qemu_command(ssh_port))}",
        ]
        if self.ssh_key is not None:
            lines.append(
                f"  log in:   ssh -i {self.ssh_key} -p {ssh_port} -o StrictHostKeyChecking=no "
                f"{self.user}@127.0.0.1   (then: sudo -iu zfs)"
            )
        lines.append(f"  results:  {self.artifacts}")
        lines.append(f"  remove:   klab gc --store {self.store}   (once nothing uses it)")
        return "\n".join(lines)

    def write(self) -> Path:
        path = self.artifacts / KEPT_FILE
        path.write_text(self.instructions() + "\n", encoding="utf-8")
        return path


def keep_clone(
    spec: DistroSpec,
    store: str,
    clone: Clone,
    artifacts: Path,
    *,
    ssh_key: Path | None,
    mac: str | None,
    uefi: UefiFirmware | None,
    accel: str | None,
) -> KeptClone:
    """Record a clone the run keeps: its SSH key and UEFI variables go to `artifacts` (the
    run's .work directory is removed), the boot command to kept-clone.txt."""
    key_path: Path | None = None
    if ssh_key is not None and ssh_key.exists():
        key_dir = artifacts / "ssh"
        key_dir.mkdir(exist_ok=True)
        key_path = key_dir / "id_ed25519"
        shutil.move(ssh_key, key_path)
    uefi_code = uefi_vars = None
    if uefi is not None:
        uefi_code = uefi.code
        uefi_vars = artifacts / "uefi-vars.fd"
        shutil.copyfile(uefi.vars_template, uefi_vars)
    kept = KeptClone(
        distro=spec.name,
        store=store,
        clone=clone,
        mac=mac or "52:54:00:12:34:56",
        memory_mib=int(spec.vm.memory) // MIB,
        cpus=spec.vm.cpus,
        machine=spec.vm.machine,
        ssh_key=key_path,
        user=spec.cloud_init.default_user.name,
        artifacts=artifacts,
        uefi_code=uefi_code,
        uefi_vars=uefi_vars,
        accel=accel or "tcg",
        cpu_model=spec.vm.cpu_model,
    )
    kept.write()
    log.info("test.clone.kept", distro=spec.name, clone=clone.name)
    return kept


def _open_paths() -> set[str]:
    """Every file some process has open (as far as /proc lets us see)."""
    found: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = list((proc / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                found.add(str(fd.readlink()))
            except OSError:
                continue
    return found


def in_use(clone: Clone, open_paths: set[str] | None = None) -> bool:
    paths = open_paths if open_paths is not None else _open_paths()
    return str(clone.path) in paths or str(clone.path.resolve()) in paths


def forgotten_clones(store: Store) -> list[Clone]:
    """Clones whose `klab test` is gone and whose disk nobody has open."""
    clones = [c for c in store.list_clones() if not owner_alive(c.owner)]
    if not clones:
        return []
    open_paths = _open_paths()
    return [c for c in clones if not in_use(c, open_paths)]


def remove_forgotten_clones(store: Store, *, dry_run: bool = False) -> list[str]:
    removed = []
    for clone in forgotten_clones(store):
        if not dry_run:
            store.destroy_clone(clone)
            log.info("test.clone.gc", clone=clone.name)
        removed.append(clone.name)
    return removed
