"""The exact repo and package commands each family's ztest hooks run, pinned.

The hooks print their commands instead of running them when KLAB_PLAN=1 (same script, same
code paths: every state-changing command goes through one `act` function), with the spec's
real hook environment.  The expected lists were reviewed against reference/distros.md
(§4-§7) and reference/openzfs-ci-and-test-suite.md (§1.7, §6): a change here is a change
of what the guests install, and must be reviewed the same way.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from imagefactory.paths import hooks_dir
from imagefactory.spec.hookenv import hook_environment
from imagefactory.spec.loader import load_distro

KERNELS = {
    "centos9": "5.14.0-611.el9.x86_64",
    "rocky9": "5.14.0-611.5.1.el9_7.x86_64",
    "fedora44": "6.19.3-200.fc44.x86_64",
    "debian13": "6.12.48+deb13-cloud-amd64",
    "ubuntu24": "6.8.0-90-generic",
}
APT = "apt-get -o DPkg::Lock::Timeout=600"
APT_INSTALL = f"{APT} install -y --no-install-recommends"
DEB822 = "/etc/apt/sources.list.d/debian.sources"


def plan(name: str, hook: str, extra_env: dict[str, str] | None = None) -> list[str]:
    resolved = load_distro(name, lineage="ztest", env=extra_env or {})
    env = hook_environment(resolved)
    env.update(PATH=os.environ["PATH"], KLAB_PLAN="1", KLAB_PLAN_KERNEL=KERNELS[name])
    proc = subprocess.run(
        ["bash", str(hooks_dir() / "ztest" / hook)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line[:2] in ("+ ", "? ")]


def el_zfs(kernel: str) -> list[str]:
    return [
        "+ dnf -y install dnf-plugins-core",
        "+ dnf config-manager --set-enabled crb",
        "+ dnf -y install epel-release",
        "+ dnf -y install https://zfsonlinux.org/epel/zfs-release-3-0.el9.noarch.rpm",
        "+ dnf config-manager --disable 'zfs*'",
        "+ dnf config-manager --enable zfs-2.2",
        f"+ dnf -y install kernel-devel-{kernel} dkms",
        "+ dnf -y install zfs-2.2.9 zfs-dkms-2.2.9 zfs-test-2.2.9",
        "+ write /etc/modules-load.d/zfs.conf",
        "+ modprobe zfs",
    ]


ZFS_PLANS = {
    "centos9": el_zfs(KERNELS["centos9"]),
    "rocky9": el_zfs(KERNELS["rocky9"]),
    "fedora44": [
        "+ dnf -y install dnf5-plugins",
        "+ dnf -y install https://zfsonlinux.org/fedora/zfs-release-3-1.fc44.noarch.rpm",
        "+ dnf config-manager setopt 'zfs*.enabled=0'",
        "+ dnf config-manager setopt zfs-2.4.enabled=1",
        "+ dnf -y install kernel-devel-6.19.3-200.fc44.x86_64 dkms",
        "+ dnf -y install zfs-2.4.1 zfs-dkms-2.4.1 zfs-test-2.4.1",
        "+ write /etc/dnf/protected.d/zfs.conf",
        "+ dnf config-manager setopt"
        " 'excludepkgs=kernel kernel-core kernel-modules* kernel-devel*'",
        "+ write /etc/modules-load.d/zfs.conf",
        "+ modprobe zfs",
    ],
    "debian13": [
        "+ sed -i -E '/^Components:/{/[[:space:]]contrib([[:space:]]|$)/!s/$/ contrib/}' " + DEB822,
        f"+ {APT} update",
        f"+ {APT_INSTALL} linux-headers-6.12.48+deb13-cloud-amd64 linux-headers-cloud-amd64"
        " zfs-dkms zfsutils-linux zfs-test",
        "+ dkms autoinstall -k 6.12.48+deb13-cloud-amd64",
        "+ apt-mark hold linux-image-6.12.48+deb13-cloud-amd64"
        " linux-headers-6.12.48+deb13-cloud-amd64 linux-headers-cloud-amd64"
        " zfs-dkms zfsutils-linux zfs-test",
        "+ write /etc/modules-load.d/zfs.conf",
        "+ modprobe zfs",
    ],
    # No zfs-dkms: Ubuntu's module is the kernel's own.
    "ubuntu24": [
        f"+ {APT} update",
        f"+ {APT_INSTALL} zfsutils-linux zfs-test",
        "+ apt-mark hold linux-image-6.8.0-90-generic linux-modules-6.8.0-90-generic"
        " zfsutils-linux zfs-test",
        "+ write /etc/modules-load.d/zfs.conf",
        "+ modprobe zfs",
    ],
}

RPM_TOOLS = (
    "ksh fio stress-ng bpftrace perf sysstat lsscsi mdadm parted bc acl attr rsync jq"
    " nfs-utils samba samba-common-tools cryptsetup openssl python3 openssh-clients e2fsprogs"
    " xfsprogs device-mapper util-linux which file bzip2 procps-ng iputils hostname pamtester"
    " xxhash"
)
DEB_TOOLS = (
    "ksh fio stress-ng bpftrace sysstat lsscsi mdadm parted bc acl attr rsync jq"
    " nfs-kernel-server samba samba-common-bin cryptsetup openssl python3 openssh-client"
    " e2fsprogs xfsprogs dmsetup file bzip2 procps iputils-ping pamtester xxhash curl zfs-zed"
)


def rpm_optional(distro: str) -> str:
    """EL9 and Fedora also get tc and sch_netem (kernel-modules-extra) for netem."""
    return (
        f"? pax dbench iozone iproute-tc kernel-modules-extra-{KERNELS[distro]}"
        " (each installed only where packaged)"
    )


def el_tools(distro: str) -> list[str]:
    return [
        "+ dnf -y install dnf-plugins-core",
        "+ dnf config-manager --set-enabled crb",
        "+ dnf -y install epel-release",
        f"+ dnf -y install {RPM_TOOLS}",
        rpm_optional(distro),
        "+ systemctl enable --now nfs-server",
        "+ systemctl enable --now smb",
    ]


TOOLS_PLANS = {
    "centos9": el_tools("centos9"),
    "rocky9": el_tools("rocky9"),
    "fedora44": [
        f"+ dnf -y install {RPM_TOOLS} util-linux-script",
        rpm_optional("fedora44"),
        "+ systemctl enable --now nfs-server",
        "+ systemctl enable --now smb",
    ],
    "debian13": [
        "+ sed -i -E '/^Components:/{/[[:space:]]non-free([[:space:]]|$)/!s/$/ non-free/}' "
        + DEB822,
        f"+ {APT} update",
        f"+ {APT_INSTALL} {DEB_TOOLS} linux-perf",
        "? pax dbench iozone3 tzdata-legacy (each installed only where packaged)",
        "+ systemctl enable --now nfs-kernel-server",
        "+ systemctl enable --now smbd",
    ],
    "ubuntu24": [
        f"+ {APT} update",
        f"+ {APT_INSTALL} {DEB_TOOLS} linux-tools-common",
        "? pax dbench iozone3 tzdata-legacy linux-tools-6.8.0-90-generic"
        " linux-modules-extra-6.8.0-90-generic (each installed only where packaged)",
        "+ systemctl enable --now nfs-kernel-server",
        "+ systemctl enable --now smbd",
    ],
}

RPM_BUILD = (
    "gcc make autoconf automake libtool pkgconf git libtirpc-devel libblkid-devel"
    " libuuid-devel systemd-devel openssl-devel zlib-devel libaio-devel libattr-devel"
    " elfutils-libelf-devel libffi-devel libcurl-devel python3"
)
DEB_BUILD = (
    "build-essential autoconf automake libtool gawk pkgconf git uuid-dev libblkid-dev"
    " libudev-dev libssl-dev zlib1g-dev libaio-dev libattr1-dev libelf-dev libtirpc-dev"
    " libffi-dev libcurl4-openssl-dev python3"
)
TREE = "+ cd /var/tmp/klab-zfs-build/zfs '&&'"
PR = {"KLAB_ZFS_SOURCE": "https://github.com/example/zfs", "KLAB_ZFS_BRANCH": "fix/txg-stall"}


def git_build(deps: list[str], kernel: str, libdir: str) -> list[str]:
    return [
        *deps,
        "+ rm -rf /var/tmp/klab-zfs-build/zfs",
        "+ mkdir -p /var/tmp/klab-zfs-build",
        # The host resolves the branch (fetch/git_refs.py); plan mode stands in for it.
        "+ git init --quiet /var/tmp/klab-zfs-build/zfs",
        "+ git -C /var/tmp/klab-zfs-build/zfs fetch --quiet --depth 1"
        " https://github.com/example/zfs '<commit>'",
        "+ git -C /var/tmp/klab-zfs-build/zfs checkout --quiet --detach FETCH_HEAD",
        f"{TREE} ./autogen.sh",
        f"{TREE} ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var"
        f" --libdir={libdir} --with-linux=/lib/modules/{kernel}/build",
        f"{TREE} make -s -jN",
        f"{TREE} make -s install",
        "+ write /etc/depmod.d/klab-zfs.conf",
        "+ ldconfig",
        f"+ depmod -a {kernel}",
        "+ write /etc/modules-load.d/zfs.conf",
        "+ modprobe zfs",
        "+ rm -rf /var/tmp/klab-zfs-build",
        "+ write /etc/imagefactory/zfs-source.env",
    ]


GIT_PLANS = {
    "rocky9": git_build(
        [
            "+ dnf -y install dnf-plugins-core",
            "+ dnf config-manager --set-enabled crb",
            f"+ dnf -y install {RPM_BUILD} kernel-devel-{KERNELS['rocky9']}",
        ],
        KERNELS["rocky9"],
        "/usr/lib64",
    ),
    "fedora44": git_build(
        [f"+ dnf -y install {RPM_BUILD} kernel-devel-{KERNELS['fedora44']}"],
        KERNELS["fedora44"],
        "/usr/lib64",
    ),
    "debian13": git_build(
        [f"+ {APT} update", f"+ {APT_INSTALL} {DEB_BUILD} linux-headers-{KERNELS['debian13']}"],
        KERNELS["debian13"],
        "/usr/lib/x86_64-linux-gnu",
    ),
    "ubuntu24": git_build(
        [f"+ {APT} update", f"+ {APT_INSTALL} {DEB_BUILD} linux-headers-{KERNELS['ubuntu24']}"],
        KERNELS["ubuntu24"],
        "/usr/lib/x86_64-linux-gnu",
    ),
}


def grow(family_install: list[str], filesystem: str) -> list[str]:
    return [*family_install, "+ growpart /dev/vda 1", filesystem]


# Plan mode stands in /dev/vda1 with the family's cloud-image file system for the root.
GROW_PLANS = {
    "centos9": grow(["+ dnf -y install cloud-utils-growpart"], "+ xfs_growfs /"),
    "rocky9": grow(["+ dnf -y install cloud-utils-growpart"], "+ xfs_growfs /"),
    "fedora44": grow(["+ dnf -y install cloud-utils-growpart"], "+ btrfs filesystem resize max /"),
    "debian13": grow(
        [f"+ {APT} update", f"+ {APT_INSTALL} cloud-guest-utils"], "+ resize2fs /dev/vda1"
    ),
    "ubuntu24": grow(
        [f"+ {APT} update", f"+ {APT_INSTALL} cloud-guest-utils"], "+ resize2fs /dev/vda1"
    ),
}


@pytest.mark.parametrize("name", sorted(GROW_PLANS))
def test_grow_root_hook_installs_growpart_through_the_shared_installer(name: str) -> None:
    assert plan(name, "05-grow-root.sh") == GROW_PLANS[name]


@pytest.mark.parametrize("name", sorted(ZFS_PLANS))
def test_zfs_hook_runs_the_reviewed_repo_and_package_commands(name: str) -> None:
    assert plan(name, "10-zfs.sh") == ZFS_PLANS[name]


@pytest.mark.parametrize("name", sorted(TOOLS_PLANS))
def test_tools_hook_installs_the_reviewed_packages(name: str) -> None:
    assert plan(name, "30-tools.sh") == TOOLS_PLANS[name]


@pytest.mark.parametrize("name", sorted(GIT_PLANS))
def test_pr_build_compiles_module_userland_and_suite_from_the_branch(name: str) -> None:
    if name in ("debian13", "ubuntu24") and not _multiarch_is_x86_64():
        pytest.skip("the Debian library directory comes from this host's gcc -print-multiarch")
    assert plan(name, "10-zfs.sh", PR) == []
    assert plan(name, "20-zfs-source.sh", PR) == GIT_PLANS[name]


def test_suite_mismatch_rebuilds_the_suite_from_the_module_tag_beside_the_packages() -> None:
    lines = plan_with_module("ubuntu24", "2.3.4-1ubuntu2")
    prefix = "/opt/klab/zfs-2.3.4"
    assert lines == [
        f"+ {APT} update",
        f"+ {APT_INSTALL} {DEB_BUILD}",
        "+ rm -rf /var/tmp/klab-zfs-build/zfs",
        "+ mkdir -p /var/tmp/klab-zfs-build",
        "+ git clone --quiet --depth 1 --branch zfs-2.3.4 https://github.com/openzfs/zfs"
        " /var/tmp/klab-zfs-build/zfs",
        f"{TREE} ./autogen.sh",
        f"{TREE} ./configure --with-config=user --prefix={prefix} --sysconfdir=/etc"
        f" --localstatedir=/var --disable-pyzfs LDFLAGS=-Wl,-rpath,{prefix}/lib",
        f"{TREE} make -s -jN",
        f"{TREE} make -s install DESTDIR=/var/tmp/klab-zfs-build/stage",
        f"+ rm -rf {prefix}",
        "+ mkdir -p /opt/klab",
        f"+ cp -a /var/tmp/klab-zfs-build/stage{prefix} {prefix}",
        "+ mkdir -p /usr/local/sbin /usr/local/bin",
        f"+ ln -sfn '{prefix}/sbin/*' '{prefix}/bin/*' /usr/local/...",
        "+ rm -rf /var/tmp/klab-zfs-build",
        "+ write /etc/imagefactory/zfs-source.env",
    ]


def test_suite_mismatch_fails_when_the_spec_says_fail() -> None:
    proc = run_with_module("ubuntu24", "2.3.4-1ubuntu2", {"KLAB_ZFS_SUITE_MISMATCH": "fail"})
    assert proc.returncode == 1
    assert "does not match module 2.3.4-1ubuntu2 (suite_mismatch: fail)" in proc.stderr


def test_fedora_refuses_a_kernel_newer_than_the_pinned_openzfs_supports() -> None:
    resolved = load_distro("fedora44", lineage="ztest", env={})
    env = hook_environment(resolved)
    env.update(PATH=os.environ["PATH"], KLAB_PLAN="1", KLAB_PLAN_KERNEL="7.0.4-200.fc44.x86_64")
    proc = subprocess.run(
        ["bash", str(hooks_dir() / "ztest" / "10-zfs.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "kernel 7.0.4-200.fc44.x86_64 is newer than 6.19" in proc.stderr


def run_with_module(
    name: str, module: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = hook_environment(load_distro(name, lineage="ztest", env={}))
    env.update(
        PATH=os.environ["PATH"],
        KLAB_PLAN="1",
        KLAB_PLAN_KERNEL=KERNELS[name],
        KLAB_PLAN_MODULE_VERSION=module,
        **(extra or {}),
    )
    return subprocess.run(
        ["bash", str(hooks_dir() / "ztest" / "20-zfs-source.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def plan_with_module(name: str, module: str) -> list[str]:
    proc = run_with_module(name, module)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line.startswith("+ ")]


def _multiarch_is_x86_64() -> bool:
    proc = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True, check=False)
    return proc.returncode != 0 or proc.stdout.strip() in ("", "x86_64-linux-gnu")


SOURCES_DEB822 = """Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian.list
Suites: trixie trixie-updates trixie-backports
Components: main

Types: deb deb-src
URIs: mirror+file:///etc/apt/mirrors/debian-security.list
Suites: trixie-security
Components: main
"""
SOURCES_LIST = "deb http://mirror.invalid/debian trixie main\n"


@pytest.mark.parametrize("component", ["contrib", "non-free"])
def test_the_printed_component_edit_adds_the_component_once(tmp_path: Path, component: str) -> None:
    hook = "10-zfs.sh" if component == "contrib" else "30-tools.sh"
    edit = next(line for line in plan("debian13", hook) if line.startswith("+ sed "))
    # The printed command is shell-quoted exactly as the guest runs it; run it on copies.
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(SOURCES_DEB822)
    command = edit.removeprefix("+ ").replace(DEB822, str(deb822))
    for _ in range(2):
        subprocess.run(["bash", "-c", command], check=True)
    text = deb822.read_text()
    assert text.count(f"Components: main {component}\n") == 2
    assert f"{component} {component}" not in text


def test_one_line_sources_get_contrib_too(tmp_path: Path) -> None:
    # The bootstrap source writes a one-line sources.list; the hooks' sed for it (_lib.sh):
    listing = tmp_path / "sources.list"
    listing.write_text(SOURCES_LIST)
    script = (hooks_dir() / "ztest" / "_lib.sh").read_text()
    line = next(x for x in script.splitlines() if "act sed" in x and "deb(-src)" in x)
    command = line.strip().removeprefix("act ").replace('"$file"', str(listing))
    command = command.replace("$component", "contrib")
    for _ in range(2):
        subprocess.run(["bash", "-c", command], check=True)
    assert listing.read_text() == "deb http://mirror.invalid/debian trixie main contrib\n"
