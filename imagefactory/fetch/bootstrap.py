"""The bootstrap source: a Debian-family cloud-style qcow2 built from a package mirror.

For air-gapped sites (and for this project's own tests) that cannot download a vendor cloud
image: mmdebstrap installs a lean root tree from the mirror, the tree gets the files a cloud
image needs (fstab, boot loader config, cloud-init NoCloud), `disk_image` turns it into a
GPT disk (extlinux for BIOS; plus an ESP with a standalone GRUB for UEFI), and the result is
written as qcow2 into the same content-addressed cache as downloaded images.

Identity: the cache key hashes every input that changes the result - suite, components,
package list, kernel, mirror, firmware, disk size, the suite's Release ``Date:`` (a new date
means new package versions) and the recipe itself (hook script, rendered files) - so only a
real change pays for a rebuild.

DKMS: packages installed at bootstrap that register DKMS modules (zfs-dkms) get them built
natively in the chroot for the image's own kernel, by the customize hook; a module that is
not built fails the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
import time
import uuid
from pathlib import Path

import structlog

from imagefactory import settings
from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.fetch import bootstrap_files, disk_image
from imagefactory.fetch.apt_sources import fetch_release_date, normalize_mirror, resolve_mirror
from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.disk_image import Firmware
from imagefactory.fetch.hashing import hash_file
from imagefactory.run import require_tool, run
from imagefactory.spec.digest import Digest
from imagefactory.spec.source import BootstrapSource

log = structlog.get_logger(__name__)

#: Bump when the build changes in a way the hashed inputs below do not capture.
RECIPE_VERSION = 1
CUSTOMIZE_HOOK = Path(__file__).with_name("bootstrap_hooks") / "customize.sh"
ARCHITECTURE = "amd64"

#: What every bootstrap image needs to boot like a cloud image, whatever the spec lists:
#: init, udev, the initramfs builder, cloud-init (NoCloud), resolved for DNS from DHCP
#: (networkd is part of systemd), iproute2 (without `ip` cloud-init finds no networkd
#: renderer and leaves the NIC unconfigured), myhostname so the guest resolves its own
#: name (sudo warns otherwise), sudo for cloud-init's default user, growpart so a grown
#: disk grows the root partition, e2fsprogs for fsck.
BASE_PACKAGES = (
    "systemd-sysv",
    "systemd-resolved",
    "libnss-myhostname",
    "iproute2",
    "udev",
    "initramfs-tools",
    "cloud-init",
    "cloud-guest-utils",
    "sudo",
    "e2fsprogs",
)
#: The standalone GRUB EFI binary is made in the chroot from its own GRUB modules.
UEFI_PACKAGES = ("grub-efi-amd64-bin",)
GRUB_EFI_MODULES = (
    "part_gpt",
    "ext2",
    "fat",
    "linux",
    "normal",
    "configfile",
    "search",
    "search_fs_uuid",
    "echo",
    "test",
    "serial",
    "terminal",
    "efi_gop",
    "all_video",
    "gzio",
)

#: Documentation and translations are not needed in a cloud guest (copyright notices stay).
DPKG_PATH_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
#: Compressed qcow2 is several times smaller and is read only as an overlay's backing file
#: or converted once onto a volume, where decompression costs little.
COMPRESS_QCOW2 = True
MMDEBSTRAP_TIMEOUT = 3 * 3600.0


_NAME = r"[a-z0-9][a-z0-9+.~_:=/-]*"


def package_list(source: BootstrapSource, *, firmware: Firmware) -> list[str]:
    """Everything passed to mmdebstrap's --include, in a stable order without duplicates."""
    wanted = [source.kernel, *BASE_PACKAGES, *source.packages]
    if firmware == "uefi":
        wanted += UEFI_PACKAGES
    packages: list[str] = []
    for name in wanted:
        if not re.fullmatch(_NAME, name):
            raise UsageError(f"not a package name: {name!r}", hint="list one package per entry")
        if name not in packages:
            packages.append(name)
    return packages


def _validate_source(source: BootstrapSource) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", source.suite):
        raise UsageError(f"not a suite name: {source.suite!r}")
    for component in source.components:
        if not re.fullmatch(r"[a-z0-9][a-z0-9./-]*", component):
            raise UsageError(f"not an archive component: {component!r}")
    if not source.components:
        raise UsageError("bootstrap.components is empty", hint="use at least [main]")


def bootstrap_key(
    source: BootstrapSource,
    *,
    firmware: Firmware,
    mirror: str,
    release_date: str,
    size_bytes: int,
) -> str:
    """The cache key of the image these inputs produce: ``bootstrap:sha256-of-inputs``.

    Package order and duplicates do not matter to apt, so they do not change the key;
    the recipe's hook script and rendered files do, so changing the build logic never
    serves a stale image.
    """
    _validate_source(source)
    placeholder = "00000000-0000-4000-8000-000000000000"
    inputs = {
        "recipe": RECIPE_VERSION,
        "hook": hashlib.sha256(CUSTOMIZE_HOOK.read_bytes()).hexdigest(),
        "files": bootstrap_files.guest_files(
            placeholder, "0000-0000" if firmware == "uefi" else None
        ),
        "dpkg": list(DPKG_PATH_EXCLUDES),
        "compress": COMPRESS_QCOW2,
        "suite": source.suite,
        "components": sorted(set(source.components)),
        "packages": sorted(package_list(source, firmware=firmware)),
        "kernel": source.kernel,
        "mirror": normalize_mirror(mirror),
        "firmware": firmware,
        "size_bytes": size_bytes,
        "release_date": release_date,
    }
    encoded = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return "bootstrap:" + hashlib.sha256(encoded).hexdigest()


def mmdebstrap_argv(
    source: BootstrapSource,
    *,
    firmware: Firmware,
    mirror: str,
    tree: Path,
    early_overlay: Path,
) -> list[str]:
    """The mmdebstrap command: a root-mode directory build of the `apt` variant.

    The `apt` variant (Essential + apt) plus our packages and no Recommends keeps the image
    lean and free of ifupdown.  /etc/kernel-img.conf must be in place before the kernel
    package is configured, hence the essential hook.
    """
    for path in (tree, early_overlay, CUSTOMIZE_HOOK):
        if any(c.isspace() for c in str(path)):
            raise UsageError(f"mmdebstrap hooks cannot take a path with whitespace: {path}")
    argv = [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        f"--architectures={ARCHITECTURE}",
        f"--components={','.join(source.components)}",
        f"--include={','.join(package_list(source, firmware=firmware))}",
        '--aptopt=Acquire::Retries "3"',
        *(f"--dpkgopt={option}" for option in DPKG_PATH_EXCLUDES),
        f"--essential-hook=sync-in {early_overlay} /",
        f"--customize-hook={CUSTOMIZE_HOOK}",
        source.suite,
        str(tree),
        normalize_mirror(mirror),
    ]
    return argv


def _write_files(root: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o644)


def _run_mmdebstrap(argv: list[str], *, suite: str, packages: int) -> None:
    started = time.monotonic()
    log.info("bootstrap.mmdebstrap.start", suite=suite, packages=packages)
    run(
        argv,
        timeout=MMDEBSTRAP_TIMEOUT,
        hint="the last lines above name the failing step; a DKMS failure names module and kernel",
    )
    log.info("bootstrap.mmdebstrap.done", seconds=round(time.monotonic() - started, 1))


def _build_grub_efi(tree: Path, root_uuid: str, out: Path) -> None:
    """A standalone GRUB EFI binary, made with the image's own GRUB: it finds the root
    filesystem by UUID and reads /boot/grub/grub.cfg from ext4."""
    embedded = tree / "tmp" / "imagefactory-grub-embedded.cfg"
    binary = tree / "tmp" / "imagefactory-BOOTX64.EFI"
    embedded.write_text(bootstrap_files.grub_embedded_cfg(root_uuid))
    try:
        run(
            [
                "chroot",
                tree,
                "grub-mkimage",
                "--format=x86_64-efi",
                f"--output=/{binary.relative_to(tree)}",
                f"--config=/{embedded.relative_to(tree)}",
                "--prefix=/boot/grub",
                *GRUB_EFI_MODULES,
            ],
            hint="grub-mkimage runs inside the image; is grub-efi-amd64-bin installed there?",
        )
        binary.replace(out)
    finally:
        embedded.unlink(missing_ok=True)
        binary.unlink(missing_ok=True)


def _check_host(firmware: Firmware) -> None:
    """Fail before the minutes mmdebstrap takes, not after, when the host lacks something."""
    if os.geteuid() != 0:
        raise InfrastructureError(
            "building a bootstrap image needs root (mmdebstrap --mode=root, loop devices)",
            hint="run as root, or use a cloud_image source",
        )
    tools = [
        ("mmdebstrap", "mmdebstrap"),
        ("chroot", "coreutils"),
        ("sgdisk", "gdisk"),
        ("mke2fs", "e2fsprogs"),
        ("extlinux", "extlinux"),
        ("losetup", "mount"),
        ("qemu-img", "qemu-utils"),
    ]
    if firmware == "uefi":
        tools += [("mkfs.vfat", "dosfstools"), ("mcopy", "mtools")]
    for tool, package in tools:
        require_tool(tool, package=package)
    disk_image.find_gptmbr()
    if not os.access(CUSTOMIZE_HOOK, os.X_OK):
        raise InfrastructureError(
            f"the bootstrap hook {CUSTOMIZE_HOOK} is missing or not executable"
        )


def build_bootstrap_image(
    source: BootstrapSource,
    out: Path,
    *,
    firmware: Firmware,
    size_bytes: int,
    mirror: str | None = None,
    workdir: Path | None = None,
) -> None:
    """Build the image and write it as qcow2 to `out`, atomically (`out` appears complete
    or not at all).  All temporary state lives in one work directory that is removed on
    success, failure and Ctrl-C; loop devices and mounts are released before that."""
    _check_host(firmware)
    _validate_source(source)
    mirror_url = resolve_mirror(mirror, source.mirror)
    layout = disk_image.plan_layout(size_bytes, firmware=firmware)
    root_uuid = str(uuid.uuid4())
    esp_serial = secrets.token_hex(4).upper()
    esp_uuid = f"{esp_serial[:4]}-{esp_serial[4:]}" if layout.esp is not None else None
    parent = workdir or settings.scratch_dir()
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imagefactory-bootstrap-", dir=parent))
    started = time.monotonic()
    try:
        tree = work / "tree"
        early = work / "early"
        _write_files(early, {"etc/kernel-img.conf": bootstrap_files.kernel_img_conf()})
        _run_mmdebstrap(
            mmdebstrap_argv(
                source, firmware=firmware, mirror=mirror_url, tree=tree, early_overlay=early
            ),
            suite=source.suite,
            packages=len(package_list(source, firmware=firmware)),
        )
        _write_files(tree, bootstrap_files.guest_files(root_uuid, esp_uuid))
        raw = work / "disk.raw"
        disk_image.create_partitioned_disk(raw, layout)
        esp_files = {}
        if layout.esp is not None:
            (tree / "boot" / "efi").mkdir(parents=True, exist_ok=True)
            efi_binary = work / "BOOTX64.EFI"
            _build_grub_efi(tree, root_uuid, efi_binary)
            esp_files["EFI/BOOT/BOOTX64.EFI"] = efi_binary
        disk_image.make_root_filesystem(raw, layout.root, tree, uuid=root_uuid)
        if layout.esp is not None:
            disk_image.make_esp(raw, layout.esp, esp_files, volume_id=esp_serial)
        disk_image.install_extlinux(raw, layout.root, mountpoint=work / "mnt")
        part = out.with_name(f".{out.name}.{os.getpid()}.part")
        try:
            disk_image.convert_to_qcow2(raw, part, compress=COMPRESS_QCOW2)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)
    finally:
        disk_image.remove_tree(work)
    log.info(
        "bootstrap.built",
        suite=source.suite,
        firmware=firmware,
        size=out.stat().st_size,
        seconds=round(time.monotonic() - started, 1),
    )


def _key_for(
    source: BootstrapSource, *, firmware: Firmware, size_bytes: int, mirror: str | None
) -> tuple[str, str]:
    mirror_url = resolve_mirror(mirror, source.mirror)
    release_date = fetch_release_date(mirror_url, source.suite)
    key = bootstrap_key(
        source,
        firmware=firmware,
        mirror=mirror_url,
        release_date=release_date,
        size_bytes=size_bytes,
    )
    return key, mirror_url


def bootstrap_cache_key(
    source: BootstrapSource, *, firmware: Firmware, size_bytes: int, mirror: str | None = None
) -> str:
    """The key the image for these inputs is cached under (reads the mirror's Release)."""
    return _key_for(source, firmware=firmware, size_bytes=size_bytes, mirror=mirror)[0]


def find_bootstrap_image(
    source: BootstrapSource,
    cache: ImageCache,
    *,
    firmware: Firmware,
    size_bytes: int,
    mirror: str | None = None,
) -> tuple[Path, Digest] | None:
    """The cached image for these inputs, if there is one (needs the mirror, not root)."""
    key, _ = _key_for(source, firmware=firmware, size_bytes=size_bytes, mirror=mirror)
    return _cached(cache, key)


def _cached(cache: ImageCache, key: str) -> tuple[Path, Digest] | None:
    digest = cache.lookup(key)
    if digest is None:
        return None
    path = cache.get(digest)
    return None if path is None else (path, digest)


def ensure_bootstrap_image(
    source: BootstrapSource,
    cache: ImageCache,
    *,
    firmware: Firmware,
    size_bytes: int,
    mirror: str | None = None,
) -> tuple[Path, Digest]:
    """The image for these inputs from `cache`, built (and inserted) only on a miss.

    The key is locked while building, so two builds of the same inputs never run at once:
    the second waits and then finds the first one's result.
    """
    key, mirror_url = _key_for(source, firmware=firmware, size_bytes=size_bytes, mirror=mirror)
    with cache.lock(key):
        hit = _cached(cache, key)
        if hit is not None:
            log.info("bootstrap.cache.hit", key=key, digest=str(hit[1]))
            return hit
        log.info("bootstrap.cache.miss", key=key, suite=source.suite, firmware=firmware)
        cache.tmp_dir.mkdir(parents=True, exist_ok=True)
        staged = cache.tmp_dir / f"{key.replace(':', '-')}.qcow2"
        try:
            build_bootstrap_image(
                source, staged, firmware=firmware, size_bytes=size_bytes, mirror=mirror_url
            )
            digest = hash_file(staged, "sha256")
            path = cache.insert(staged, digest, keys=(key,))
        finally:
            staged.unlink(missing_ok=True)
    log.info("bootstrap.cache.stored", key=key, digest=str(digest), path=str(path))
    return path, digest
