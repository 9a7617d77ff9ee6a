"""The environment every guest hook gets: the spec's facts, as KLAB_* variables.

Hooks are shell in hooks/, never Python strings; this is the one bridge between the spec
and them, so a hook never has to parse YAML and every value it sees is visible in `plan`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the spec model imports COMMON_NAMES from here
    from imagefactory.spec.loader import ResolvedSpec

#: The variables every hook gets; a hook's own `env` may add variables, never redefine these
#: (the spec model refuses it: the value would silently differ from what `plan` shows).
COMMON_NAMES = frozenset(
    {
        "KLAB_DISTRO",
        "KLAB_SHORT",
        "KLAB_FAMILY",
        "KLAB_RELEASE",
        "KLAB_LINEAGE",
        "KLAB_GOLDEN",
        "KLAB_DEFAULT_USER",
        "KLAB_ZFS_VERSION",
        "KLAB_ZFS_PROVIDER",
        "KLAB_ZFS_REPO",
        "KLAB_ZFS_RELEASE_RPM",
        "KLAB_ZFS_PACKAGES",
        "KLAB_ZFS_KERNEL_MAX",
        "KLAB_ZFS_SUITE_MISMATCH",
        "KLAB_ZFS_GIT_URL",
        "KLAB_ZFS_GIT_BRANCH",
        "KLAB_ZFS_GIT_REF",
        "KLAB_ZFS_GIT_COMMIT",
        "KLAB_TEST_USER",
        "KLAB_VDEV_COUNT",
        "KLAB_VDEV_SIZE",
        "KLAB_VDEV_DIR",
        "KLAB_SEAL_MACHINE_ID",
        "KLAB_SEAL_SSH_HOST_KEYS",
        "KLAB_SEAL_CLOUD_INIT",
        "KLAB_SEAL_RANDOM_SEED",
        "KLAB_SEAL_DHCP_LEASES",
        "KLAB_SEAL_LOGS",
        "KLAB_SEAL_SHELL_HISTORY",
        "KLAB_SEAL_PACKAGE_CACHE",
        "KLAB_SEAL_KEEP",
    }
)


def _flag(value: bool) -> str:
    return "1" if value else "0"


def hook_environment(resolved: ResolvedSpec) -> dict[str, str]:
    """Variables common to all hooks; a hook's own `env` from the spec is added on top."""
    spec = resolved.spec
    zfs = spec.zfs
    env = {
        "KLAB_DISTRO": spec.name,
        "KLAB_SHORT": spec.short,
        "KLAB_FAMILY": spec.family,
        "KLAB_RELEASE": spec.release,
        "KLAB_LINEAGE": resolved.lineage,
        "KLAB_GOLDEN": resolved.golden_leaf,
        "KLAB_DEFAULT_USER": spec.cloud_init.default_user.name,
        "KLAB_ZFS_VERSION": zfs.version,
        "KLAB_ZFS_PROVIDER": zfs.provider,
        "KLAB_ZFS_REPO": zfs.repo or "",
        "KLAB_ZFS_RELEASE_RPM": zfs.release_rpm or "",
        "KLAB_ZFS_PACKAGES": " ".join(zfs.packages),
        "KLAB_ZFS_KERNEL_MAX": zfs.kernel_max or "",
        "KLAB_ZFS_SUITE_MISMATCH": zfs.suite_mismatch,
        "KLAB_ZFS_GIT_URL": zfs.git.url if zfs.git else "",
        "KLAB_ZFS_GIT_BRANCH": zfs.git.branch if zfs.git else "",
        "KLAB_ZFS_GIT_REF": resolved.zfs_ref or "",
        "KLAB_ZFS_GIT_COMMIT": resolved.zfs_commit or "",
        "KLAB_TEST_USER": spec.test.user,
        "KLAB_VDEV_COUNT": str(spec.test.vdevs.count),
        "KLAB_VDEV_SIZE": str(int(spec.test.vdevs.size)),
        "KLAB_VDEV_DIR": spec.test.vdevs.directory,
        "KLAB_SEAL_MACHINE_ID": _flag(spec.seal.machine_id),
        "KLAB_SEAL_SSH_HOST_KEYS": _flag(spec.seal.ssh_host_keys),
        "KLAB_SEAL_CLOUD_INIT": _flag(spec.seal.cloud_init),
        "KLAB_SEAL_RANDOM_SEED": _flag(spec.seal.random_seed),
        "KLAB_SEAL_DHCP_LEASES": _flag(spec.seal.dhcp_leases),
        "KLAB_SEAL_LOGS": _flag(spec.seal.logs),
        "KLAB_SEAL_SHELL_HISTORY": _flag(spec.seal.shell_history),
        "KLAB_SEAL_PACKAGE_CACHE": _flag(spec.seal.package_cache),
        "KLAB_SEAL_KEEP": ":".join(spec.seal.keep),
    }
    assert env.keys() == COMMON_NAMES, "COMMON_NAMES must list every common variable"
    return env
