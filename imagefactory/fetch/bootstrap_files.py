"""The configuration files that make a bootstrapped tree boot like a vendor cloud image.

Pure text rendering, kept apart from the build so each file's content can be read and
tested on its own, and so the cache key can hash exactly what ends up in the image.

Boot entries name ``/boot/vmlinuz`` and ``/boot/initrd.img``: with ``link_in_boot`` in
/etc/kernel-img.conf, Debian's kernel packages keep those symlinks pointing at the newest
kernel, and both extlinux and GRUB follow symlinks on ext4, so a kernel upgrade inside a
guest needs no boot loader update.
"""

from __future__ import annotations

import yaml

#: Serial console last, so /dev/console (and systemd's getty) is the serial port QEMU logs;
#: panic=-1 reboots at once on a panic, which under ``-no-reboot`` ends QEMU instead of
#: leaving a dead guest spinning at 100 % CPU until a timeout.
CONSOLE_ARGS = "console=tty0 console=ttyS0,115200n8 panic=-1"
KERNEL_PATH = "/boot/vmlinuz"
INITRD_PATH = "/boot/initrd.img"
HOSTNAME = "debian"
CLOUD_CFG_PATH = "etc/cloud/cloud.cfg.d/95_imagefactory.cfg"
FALLBACK_NETWORK_PATH = "etc/systemd/network/99-imagefactory-dhcp.network"


def kernel_img_conf() -> str:
    """Keep /boot/vmlinuz and /boot/initrd.img pointing at the newest kernel."""
    return "do_symlinks = yes\nlink_in_boot = yes\n"


def kernel_cmdline(root_uuid: str) -> str:
    return f"root=UUID={root_uuid} ro {CONSOLE_ARGS}"


def extlinux_conf(root_uuid: str) -> str:
    """One entry, no menu, no timeout: ldlinux.c32 alone can run it (no other modules)."""
    return (
        "SERIAL 0 115200\n"
        "DEFAULT debian\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "\n"
        "LABEL debian\n"
        f"    LINUX {KERNEL_PATH}\n"
        f"    INITRD {INITRD_PATH}\n"
        f"    APPEND {kernel_cmdline(root_uuid)}\n"
    )


def grub_embedded_cfg(root_uuid: str) -> str:
    """Built into the standalone EFI binary: find the root filesystem, then read grub.cfg."""
    return (
        f"search --no-floppy --fs-uuid --set=root {root_uuid}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile $prefix/grub.cfg\n"
    )


def grub_cfg(root_uuid: str) -> str:
    return (
        "set default=0\n"
        "set timeout=0\n"
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        "\n"
        'menuentry "Debian GNU/Linux" {\n'
        f"    linux {KERNEL_PATH} {kernel_cmdline(root_uuid)}\n"
        f"    initrd {INITRD_PATH}\n"
        "}\n"
    )


def fstab(root_uuid: str, esp_uuid: str | None) -> str:
    lines = [f"UUID={root_uuid}\t/\text4\trw,errors=remount-ro\t0\t1"]
    if esp_uuid is not None:
        # nofail: a damaged ESP must not stop a guest whose kernel lives on the root fs.
        lines.append(f"UUID={esp_uuid}\t/boot/efi\tvfat\tumask=0077,nofail\t0\t0")
    return "\n".join(lines) + "\n"


def cloud_cfg() -> str:
    """cloud-init looks only for a NoCloud seed, then gives up quickly (None), instead of
    probing network metadata services for minutes under TCG."""
    return "# Written by imagefactory's bootstrap source.\n" + yaml.safe_dump(
        {"datasource_list": ["NoCloud", "None"]}, default_flow_style=None
    )


def fallback_network() -> str:
    """DHCP on any Ethernet link no other .network file claims.

    cloud-init's own file (10-cloud-init-*.network) sorts first and wins; this one only
    catches a NIC the seed's network-config missed - e.g. a v2 ``match: name:`` glob, which
    cloud-init's networkd renderer writes as ``Name=<id>`` - so the guest still gets its
    network instead of waiting two minutes in systemd-networkd-wait-online.
    """
    return (
        "# Written by imagefactory's bootstrap source.\n"
        "[Match]\n"
        "Type=ether\n"
        "Name=en* eth*\n"
        "\n"
        "[Network]\n"
        "DHCP=yes\n"
    )


def hostname() -> str:
    return HOSTNAME + "\n"


def guest_files(root_uuid: str, esp_uuid: str | None) -> dict[str, str]:
    """Every file written into the finished tree: path relative to / -> content."""
    files = {
        "etc/fstab": fstab(root_uuid, esp_uuid),
        "etc/hostname": hostname(),
        CLOUD_CFG_PATH: cloud_cfg(),
        FALLBACK_NETWORK_PATH: fallback_network(),
        "boot/extlinux/extlinux.conf": extlinux_conf(root_uuid),
    }
    if esp_uuid is not None:
        files["boot/grub/grub.cfg"] = grub_cfg(root_uuid)
    return files
