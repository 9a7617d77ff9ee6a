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

import dataclasses
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import structlog

from imagefactory.spec.model import DistroSpec
from imagefactory.store.base import Clone, Store
from imagefactory.store.owner import owner_alive
from imagefactory.vm.firmware import UefiFirmware
from imagefactory.vm.qemu_args import VmConfig, console_argv

log = structlog.get_logger(__name__)

SSH_PORT = 2222
KEPT_FILE = "kept-clone.txt"


@dataclass(frozen=True)
class KeptClone:
    """A kept clone and the VM the stage booted it as (`config`, from vm/fromspec.py)."""

    distro: str
    store: str
    clone: Clone
    config: VmConfig
    ssh_key: Path | None
    user: str
    """The login (the spec's default user)."""
    test_user: str
    """The suite's user (the spec's test.user, KLAB_TEST_USER in the guest)."""
    artifacts: Path
    uefi: UefiFirmware | None = None
    uefi_vars: Path | None = None
    qemu: str = "qemu-system-x86_64"

    @property
    def mac(self) -> str:
        return self.config.mac

    def qemu_command(self, ssh_port: int = SSH_PORT) -> list[str]:
        """The stage's own argument list (vm/qemu_args.py) for a terminal: the seed and the
        results disk went with the run's .work directory, SSH is forwarded to `ssh_port`."""
        config = dataclasses.replace(self.config, seed=None, extra_disks=(), ssh_port=ssh_port)
        return console_argv(config, uefi=self.uefi, uefi_vars=self.uefi_vars, qemu=self.qemu)

    def instructions(self, ssh_port: int = SSH_PORT) -> str:
        lines = [
            f"kept the clone of {self.distro}: {self.clone.name} ({self.store})",
            f"  boot it:  {shlex.join(self.qemu_command(ssh_port))}",
        ]
        if self.ssh_key is not None:
            lines.append(
                f"  log in:   ssh -i {self.ssh_key} -p {ssh_port} -o StrictHostKeyChecking=no "
                f"{self.user}@127.0.0.1   (then: sudo -iu {self.test_user})"
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
    config: VmConfig,
    *,
    ssh_key: Path | None,
    uefi: UefiFirmware | None,
    qemu: str = "qemu-system-x86_64",
) -> KeptClone:
    """Record a clone the run keeps: its UEFI variables go to `artifacts` (the run's .work
    directory is removed), the boot command to kept-clone.txt.  `ssh_key` is the run's key,
    already moved out of .work (the seed step's `keep`)."""
    uefi_vars = None
    if uefi is not None:
        uefi_vars = artifacts / "uefi-vars.fd"
        shutil.copyfile(uefi.vars_template, uefi_vars)
    kept = KeptClone(
        distro=spec.name,
        store=store,
        clone=clone,
        config=config,
        ssh_key=ssh_key,
        user=spec.cloud_init.default_user.name,
        test_user=spec.test.user,
        artifacts=artifacts,
        uefi=uefi,
        uefi_vars=uefi_vars,
        qemu=qemu,
    )
    kept.write()
    log.info("test.clone.kept", distro=spec.name, clone=clone.name)
    return kept


def move_key(ssh_key: Path, artifacts: Path) -> Path | None:
    """The run's private key, moved from .work (removed) to the kept clone's artifacts."""
    if not ssh_key.exists():
        return None
    key_dir = artifacts / "ssh"
    key_dir.mkdir(exist_ok=True)
    target = key_dir / "id_ed25519"
    shutil.move(ssh_key, target)
    return target


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
