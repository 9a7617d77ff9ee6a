"""Mount a disk image's root filesystem read-only on the host, to check a build's seal.

qcow2 volumes are exposed as a raw file through qemu-storage-daemon's FUSE export (no copy,
no nbd module), raw volumes and zvols are used directly; the root partition is attached as
a read-only offset loop device and mounted with journal replay disabled, so inspecting an
image never changes a byte of it.  Everything is undone on exit, whatever happens.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import structlog

from imagefactory.builder.partitions import Partition, read_partitions
from imagefactory.errors import InfrastructureError
from imagefactory.run import run

log = structlog.get_logger(__name__)

# Options that keep a read-only mount from writing: no journal replay, no log recovery.
RO_OPTIONS = {"ext4": "ro,noload", "ext3": "ro,noload", "xfs": "ro,norecovery", "btrfs": "ro"}
ROOT_CANDIDATES = ("", "root", "@")  # Fedora's btrfs keeps / in the `root` subvolume


@contextmanager
def raw_view(image: Path, image_format: str) -> Iterator[Path]:
    """A path whose bytes are the image's guest-visible disk, read-only."""
    if image_format == "raw":
        yield image
        return
    with tempfile.TemporaryDirectory(prefix="imagefactory-view-") as tmp:
        export = Path(tmp) / "disk.raw"
        export.touch()
        pidfile = Path(tmp) / "qsd.pid"
        run(
            [
                "qemu-storage-daemon",
                "--blockdev",
                f"driver=file,node-name=file0,filename={image},read-only=on",
                "--blockdev",
                f"driver={image_format},node-name=disk0,file=file0,read-only=on",
                "--export",
                f"type=fuse,id=exp0,node-name=disk0,mountpoint={export},writable=off",
                "--pidfile",
                str(pidfile),
                "--daemonize",
            ],
            hint="install qemu-system-x86 (qemu-storage-daemon) and make sure /dev/fuse exists",
        )
        try:
            yield export
        finally:
            _stop_storage_daemon(pidfile, export)


def _stop_storage_daemon(pidfile: Path, export: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid:
        with suppress(ProcessLookupError):
            os.kill(pid, 15)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
    # The FUSE mount can outlive the daemon; never leave it behind.
    if _is_mountpoint(export):
        run(["umount", "-l", str(export)], check=False)


def _is_mountpoint(path: Path) -> bool:
    target = str(path)
    with Path("/proc/self/mounts").open(encoding="utf-8") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


@contextmanager
def _loop_device(raw: Path, part: Partition) -> Iterator[str]:
    device = run(
        [
            "losetup",
            "--read-only",
            "--find",
            "--show",
            "--offset",
            str(part.offset),
            "--sizelimit",
            str(part.size),
            str(raw),
        ]
    ).stdout.strip()
    try:
        yield device
    finally:
        run(["losetup", "--detach", device], check=False)


def _fs_type(device: str) -> str:
    proc = run(["blkid", "-p", "-o", "value", "-s", "TYPE", device], check=False)
    return proc.stdout.strip()


@contextmanager
def mounted_root(image: Path, image_format: str) -> Iterator[Path]:
    """The image's root directory (the one holding etc/os-release), mounted read-only."""
    if os.geteuid() != 0:
        raise InfrastructureError(
            "checking a golden's seal mounts its filesystem read-only and needs root",
            hint="run the build as root",
        )
    with raw_view(image, image_format) as raw:
        partitions = [p for p in read_partitions(raw) if p.may_hold_root]
        if not partitions:
            raise InfrastructureError(f"{image}: no Linux partition found to check the seal")
        for part in sorted(partitions, key=lambda p: p.size, reverse=True):
            with ExitStack() as stack:
                device = stack.enter_context(_loop_device(raw, part))
                fs_type = _fs_type(device)
                if fs_type not in RO_OPTIONS:
                    log.debug("seal.skip_partition", partition=part.number, fs=fs_type)
                    continue
                mountpoint = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                run(["mount", "-t", fs_type, "-o", RO_OPTIONS[fs_type], device, str(mountpoint)])
                stack.callback(run, ["umount", str(mountpoint)], check=False)
                for candidate in ROOT_CANDIDATES:
                    root = mountpoint / candidate
                    if (root / "etc" / "os-release").exists():
                        yield root
                        return
        raise InfrastructureError(f"{image}: no partition holds a root filesystem (etc/os-release)")
