"""The distro spec: the one source of truth for validation, defaults, `plan`, schema and docs.

Every field a golden depends on is declared here once.  Models forbid unknown keys (a typo
must fail loudly, never be ignored) and are frozen, so a resolved spec cannot drift while a
build runs.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, ByteSize, Field, field_validator, model_validator

from imagefactory.errors import UsageError
from imagefactory.spec.hookenv import COMMON_NAMES
from imagefactory.spec.names import ShortName as ShortName  # declared with golden names
from imagefactory.spec.source import SourceSpec
from imagefactory.spec.types import Duration, HttpUrl, Identifier, Size, StrictModel
from imagefactory.vm.hookplan import HOOK_NAME
from imagefactory.vm.qemu_args import check_extra_args

Family = Literal["el", "fedora", "debian", "ubuntu"]
# The lab's two lineages: lean goldens (klab-golden-*) and ztest goldens (klab-ztest-*).
# "regular" and "golden" are older spellings of lean, accepted on input (settings.py).
Lineage = Literal["lean", "ztest"]
LINEAGES: tuple[Lineage, ...] = ("lean", "ztest")


def _user_name(value: str) -> str:
    # What useradd and cloud-init accept everywhere (shadow-utils' portable name rule).
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", value):
        raise ValueError(
            f"{value!r} is not a portable user name: a lowercase letter or '_', then up to "
            "31 lowercase letters, digits, '_' or '-'"
        )
    return value


UserName = Annotated[str, AfterValidator(_user_name)]


def _guest_path(value: str) -> str:
    # Paths are passed to hooks as KLAB_* values; KLAB_SEAL_KEEP joins them with ':'.
    if not value.startswith("/") or ":" in value or ".." in value.split("/"):
        raise ValueError(f"{value!r} must be an absolute guest path without ':' or '..'")
    return value


GuestPath = Annotated[str, AfterValidator(_guest_path)]


def _package(value: str) -> str:
    # KLAB_ZFS_PACKAGES joins names with spaces; a name is one word a package manager takes.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9+.~_:=*-]*", value):
        raise ValueError(f"not a package name: {value!r}")
    return value


PackageName = Annotated[str, AfterValidator(_package)]


def _relative_file(value: str, where: str) -> str:
    if not value or value.startswith("/") or ".." in value.split("/"):
        raise ValueError(f"must be a path inside {where} (relative, no '..')")
    return value


class DiskSpec(StrictModel):
    """Virtual size of the golden per lineage; ztest needs room for vdevs and the suite."""

    lean: Size = Field(description="lean golden size, e.g. 10GiB (older key: regular)")
    ztest: Size = Field(description="ztest golden size, e.g. 40GiB")
    volblocksize: Size = Field(ByteSize(16384), description="zvol volblocksize in the zfs store")

    @field_validator("volblocksize")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value < 4096 or value > 131072 or value & (value - 1):
            raise ValueError("volblocksize must be a power of two between 4KiB and 128KiB")
        return value

    def for_lineage(self, lineage: Lineage) -> int:
        return int(self.ztest if lineage == "ztest" else self.lean)


class VmSpec(StrictModel):
    """How the build VM is started; extra_args add to the built-in QEMU arguments, never replace."""

    memory: Size = Field(ByteSize(2 * 1024**3), description="guest memory, e.g. 4GiB")
    cpus: int = Field(2, ge=1, le=64)
    firmware: Literal["bios", "uefi"] = "bios"
    secure_boot: bool = Field(
        False, description="must stay off: DKMS-built ZFS modules are not signed"
    )
    machine: str = Field("q35", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    cpu_model: str = Field(
        "max",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(,[+-]?[A-Za-z0-9._=-]+)*$",
        description="EL9 needs x86-64-v2 or better; features as in QEMU (max,+pdpe1gb)",
    )
    boot_timeout: Duration = Field(1800.0, description="whole build boot, all hooks included")
    extra_args: list[str] = Field(default_factory=list, description="added to QEMU's arguments")

    @field_validator("secure_boot")
    @classmethod
    def _secure_boot_off(cls, value: bool) -> bool:
        if value:
            raise ValueError("secure boot must be off: unsigned DKMS ZFS modules would not load")
        return value

    @field_validator("memory")
    @classmethod
    def _enough_memory(cls, value: int) -> int:
        if value < 512 * 1024**2:
            raise ValueError("memory must be at least 512MiB")
        if value % 1024**2:
            raise ValueError("memory must be a whole number of MiB (4GiB, not 4GB)")
        return value

    @field_validator("extra_args")
    @classmethod
    def _extra_args_add_only(cls, value: list[str]) -> list[str]:
        # The same check QEMU's command line is built with, so validate refuses what
        # build would.
        try:
            check_extra_args(value)
        except UsageError as exc:
            message = str(exc).removeprefix("spec.vm.extra_args: ")
            raise ValueError(f"{message} ({exc.hint})" if exc.hint else message) from None
        return value


class DefaultUser(StrictModel):
    """The image's cloud user; login is by a per-build SSH key only, never a password."""

    name: UserName
    sudo: bool = True


class CloudInitSpec(StrictModel):
    default_user: DefaultUser
    fragments: list[str] = Field(
        default_factory=list, description="user-data fragments under the repository's cloud-init/"
    )

    @field_validator("fragments")
    @classmethod
    def _inside_cloud_init(cls, value: list[str]) -> list[str]:
        for fragment in value:
            _relative_file(fragment, "cloud-init/")
        return value


class HookSpec(StrictModel):
    """One guest script, run in order by the in-guest runner with its own timeout."""

    script: str = Field(description="path under the repository's hooks/ directory")
    timeout: Duration = 600.0
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("script")
    @classmethod
    def _relative_script(cls, value: str) -> str:
        _relative_file(value, "hooks/")
        # The guest knows a hook by its file name: the runner's rule, shared.
        if not HOOK_NAME.fullmatch(posixpath.basename(value)):
            raise ValueError(
                "hook scripts are named NN-name.sh (letters, digits, '.', '_', '-' after NN-)"
            )
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
                raise ValueError(f"environment variable names are upper case: {key!r}")
            if key in COMMON_NAMES:
                raise ValueError(
                    f"{key} is set by the factory from the spec; change the spec field instead"
                )
        return value

    @property
    def name(self) -> str:
        """The hook's name in the guest (its file name)."""
        return posixpath.basename(self.script)


class HooksSpec(StrictModel):
    lean: list[HookSpec] = Field(
        default_factory=list, description="hooks of the lean lineage (older key: regular)"
    )
    ztest: list[HookSpec] = Field(default_factory=list)

    @field_validator("lean", "ztest")
    @classmethod
    def _unique_names(cls, value: list[HookSpec]) -> list[HookSpec]:
        seen: dict[str, str] = {}
        for hook in value:
            if hook.name in seen:
                raise ValueError(
                    f"{seen[hook.name]} and {hook.script} have the same name in the guest "
                    f"({hook.name}); rename one"
                )
            seen[hook.name] = hook.script
        return value

    def for_lineage(self, lineage: Lineage) -> list[HookSpec]:
        return self.ztest if lineage == "ztest" else self.lean


class SealSpec(StrictModel):
    """What the last hook removes so every clone boots as a new machine."""

    machine_id: bool = True
    ssh_host_keys: bool = True
    cloud_init: bool = True
    random_seed: bool = True
    dhcp_leases: bool = True
    logs: bool = True
    shell_history: bool = True
    package_cache: bool = True
    keep: list[GuestPath] = Field(
        default_factory=lambda: ["/var/tmp/zfs-test-vdevs"],
        description="paths sealing must never remove",
    )


class GitSource(StrictModel):
    """An OpenZFS tree to build in the guest instead of packages (PR builds)."""

    url: HttpUrl
    branch: str = Field(min_length=1)

    @field_validator("branch")
    @classmethod
    def _safe_branch(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._/+-]+", value) or ".." in value:
            raise ValueError(f"not a valid git branch name: {value!r}")
        return value


ZfsProvider = Literal["zfsonlinux", "distro", "kernel", "git"]


class ZfsSpec(StrictModel):
    """Which OpenZFS a ztest golden carries and where it comes from."""

    version: str = Field(description="expected version pattern, e.g. 2.2.9 or 2.3.*")
    provider: ZfsProvider = Field(
        description="zfsonlinux repo (DKMS), distro packages (DKMS), in-kernel module, or git"
    )
    repo: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="zfsonlinux repo id to enable, e.g. zfs-2.2",
    )
    release_rpm: HttpUrl | None = Field(None, description="the zfs-release RPM (zfsonlinux)")
    packages: list[PackageName] = Field(
        default_factory=list, description="packages the ZFS hook installs"
    )
    kernel_max: str | None = Field(
        None,
        pattern=r"^\d+\.\d+$",
        description="highest kernel series this OpenZFS builds for; the hook holds the kernel",
    )
    git: GitSource | None = None
    suite_mismatch: Literal["fail", "rebuild", "allow"] = Field(
        "rebuild",
        description="module and test-suite versions differ: fail, rebuild the suite from the tag, "
        "or allow",
    )

    @field_validator("version")
    @classmethod
    def _version_pattern(cls, value: str) -> str:
        if not re.fullmatch(r"\d+\.\d+(\.(\d+|\*))?", value):
            raise ValueError("version must look like 2.2.9 or 2.3.*")
        return value

    @model_validator(mode="after")
    def _provider_fields(self) -> ZfsSpec:
        if self.provider == "zfsonlinux" and (self.repo is None or self.release_rpm is None):
            raise ValueError("provider zfsonlinux needs repo and release_rpm")
        if self.provider == "git" and self.git is None:
            raise ValueError("provider git needs git.url and git.branch")
        if self.provider != "git" and self.git is not None:
            raise ValueError("git is only used with provider git")
        return self

    def matches(self, measured: str) -> bool:
        """Whether a measured version (e.g. `2.3.9-0+deb13u1`) fits the expected pattern."""
        core = re.match(r"\d+\.\d+\.\d+", measured.removeprefix("zfs-"))
        if core is None:
            return False
        pattern = re.escape(self.version).replace(r"\*", r"\d+")
        return (
            re.fullmatch(
                pattern + (r"\.\d+" if self.version.count(".") == 1 else ""), core.group(0)
            )
            is not None
        )


class VdevSpec(StrictModel):
    count: int = Field(8, ge=1, le=32)
    size: Size = Field(ByteSize(1024**3))
    directory: GuestPath = "/var/tmp/zfs-test-vdevs"


Runfile = Literal["quick", "linux", "linux-fault"]
RUNFILES: tuple[Runfile, ...] = ("quick", "linux", "linux-fault")


class TestSpec(StrictModel):
    """How the test stage runs the suite in a clone of the ztest golden."""

    __test__ = False  # not a pytest class despite the name

    user: UserName = "zfs"
    vdevs: VdevSpec = Field(default_factory=VdevSpec)
    runfiles: list[Runfile] = Field(default_factory=lambda: list(RUNFILES))
    timeout: Duration = Field(4 * 3600.0, description="whole test run in one clone")


class DistroSpec(StrictModel):
    """One distro's golden images: identity, source, VM, payload, sealing and testing."""

    multiline_fields = frozenset({"description"})

    name: Identifier = Field(description="versioned spec name, e.g. fedora44")
    short: ShortName = Field(description="name used in golden names, e.g. fedora")
    family: Family
    release: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    aliases: list[Identifier] = Field(default_factory=list)
    description: str = ""
    source: SourceSpec
    disk: DiskSpec
    vm: VmSpec = Field(default_factory=VmSpec)
    cloud_init: CloudInitSpec
    hooks: HooksSpec = Field(default_factory=HooksSpec)
    seal: SealSpec = Field(default_factory=SealSpec)
    zfs: ZfsSpec
    test: TestSpec = Field(default_factory=TestSpec)

    @model_validator(mode="after")
    def _consistent(self) -> DistroSpec:
        if self.source.bootstrap is not None and self.family not in ("debian", "ubuntu"):
            raise ValueError("a bootstrap source is only for Debian-family specs")
        if self.family == "ubuntu" and self.zfs.provider == "zfsonlinux":
            raise ValueError("Ubuntu carries ZFS in its kernel: provider must be kernel or git")
        return self
