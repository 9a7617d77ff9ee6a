"""The cloud-init NoCloud seed: `user-data`, `meta-data`, `network-config` on a `cidata` ISO.

The ISO is written with pycdlib, so no genisoimage/xorriso is needed on the host.  Each boot
gets a new instance-id (cloud-init only runs its per-instance modules again when the id
changes) and its own SSH key pair; the key's comment names the build, which lets the guest
runner remove exactly that key before the image is sealed.
"""

from __future__ import annotations

import io
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from imagefactory.errors import UsageError
from imagefactory.run import require_tool, run
from imagefactory.vm.hookplan import HookPlan
from imagefactory.vm.qemu_args import DEFAULT_MAC
from imagefactory.vm.userdata import UserDataInputs, build_cloud_config, render_user_data

SEED_LABEL = "cidata"
SEED_FILES = ("user-data", "meta-data", "network-config")
# ISO9660 level-3 names must be 8.3 d-characters; Linux reads the Rock Ridge names.
_ISO_NAMES = {
    "user-data": "USERDATA.;1",
    "meta-data": "METADATA.;1",
    "network-config": "NETWORKC.;1",
}
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


@dataclass(frozen=True)
class SshKeyPair:
    """A per-build key: the private half stays on the host, the public half goes in the seed."""

    private_key: Path
    public_key: str
    comment: str


@dataclass(frozen=True)
class SeedFiles:
    """The three NoCloud files, as text, ready to be written as a directory or an ISO."""

    user_data: str
    meta_data: str
    network_config: str

    def as_dict(self) -> dict[str, bytes]:
        return {
            "user-data": self.user_data.encode(),
            "meta-data": self.meta_data.encode(),
            "network-config": self.network_config.encode(),
        }

    def write_dir(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.as_dict().items():
            (directory / name).write_bytes(data)

    def write_iso(self, path: Path) -> None:
        """A Joliet + Rock Ridge ISO labelled `cidata`, which NoCloud finds by its label."""
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=SEED_LABEL)
        try:
            for name, data in self.as_dict().items():
                iso.add_fp(
                    io.BytesIO(data),
                    len(data),
                    "/" + _ISO_NAMES[name],
                    rr_name=name,
                    joliet_path="/" + name,
                )
            tmp = path.with_name(path.name + ".part")
            iso.write(str(tmp))
            tmp.replace(path)
        finally:
            iso.close()


def read_seed_iso(path: Path) -> dict[str, bytes]:
    """The files of a seed ISO by their Rock Ridge names (for tests and inspection)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        files: dict[str, bytes] = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode()
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path="/" + name)
            files[name] = out.getvalue()
        return files
    finally:
        iso.close()


def volume_label(path: Path) -> str:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label: bytes = iso.pvd.volume_identifier
        return label.decode().strip()
    finally:
        iso.close()


def new_instance_id(name: str) -> str:
    """Unique per boot, so cloud-init treats every build boot as a new instance."""
    return f"imagefactory-{name}-{uuid.uuid4().hex[:16]}"


def hostname_for(name: str) -> str:
    """A valid host name (RFC 1123 label) derived from the spec name."""
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "imagefactory"


def render_meta_data(instance_id: str, hostname: str) -> str:
    return yaml.safe_dump({"instance-id": instance_id, "local-hostname": hostname}, sort_keys=False)


def network_config_v2(mac: str = DEFAULT_MAC) -> dict[str, Any]:
    """DHCP on the NIC QEMU was given, found by its MAC address.

    A MAC match works with every renderer cloud-init picks (netplan, networkd, sysconfig,
    NetworkManager) and whatever the guest calls the NIC (eth0, ens3, enp0s2): cloud-init
    looks the interface's real name up by MAC.  A name glob like `e*` survives only netplan.
    """
    mac = mac.lower()
    if not _MAC.fullmatch(mac):
        raise UsageError(f"not a MAC address: {mac!r}")
    nic = {"match": {"macaddress": mac}, "dhcp4": True, "dhcp6": False}
    return {"version": 2, "ethernets": {"nic0": nic}}


def render_network_config(mac: str = DEFAULT_MAC) -> str:
    return yaml.safe_dump(network_config_v2(mac), sort_keys=False)


def generate_ssh_key(directory: Path, comment: str) -> SshKeyPair:
    """An ed25519 key pair without passphrase, made by ssh-keygen, readable by us only."""
    if not re.fullmatch(r"[A-Za-z0-9._@-]+", comment):
        raise UsageError(f"SSH key comment {comment!r} must be letters, digits, '.', '_', '@', '-'")
    tool = require_tool("ssh-keygen", package="openssh-client")
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / "id_ed25519"
    for stale in (private, private.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    run([tool, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", private])
    private.chmod(0o600)
    public = private.with_suffix(".pub").read_text().strip()
    return SshKeyPair(private, public, comment)


def build_key_comment(name: str) -> str:
    """`imagefactory-build-<spec>-<random>`: unique, so the runner removes only this key."""
    return f"imagefactory-build-{hostname_for(name)}-{secrets.token_hex(4)}"


def build_seed(
    *,
    name: str,
    default_user: str,
    key: SshKeyPair,
    hooks: HookPlan,
    fragments: Sequence[Path] = (),
    sudo: bool = True,
    mac: str = DEFAULT_MAC,
    poweroff: bool = True,
    instance_id: str | None = None,
    cloud_init_root: Path | None = None,
    hooks_root: Path | None = None,
) -> SeedFiles:
    """The seed for one boot of the spec called `name`."""
    extra: dict[str, Any] = {}
    if cloud_init_root is not None:
        extra["cloud_init_root"] = cloud_init_root
    if hooks_root is not None:
        extra["hooks_root"] = hooks_root
    inputs = UserDataInputs(
        default_user=default_user,
        ssh_public_key=key.public_key,
        build_key_comment=key.comment,
        hooks=hooks,
        sudo=sudo,
        fragments=tuple(fragments),
        poweroff=poweroff,
        **extra,
    )
    user_data = render_user_data(build_cloud_config(inputs))
    meta = render_meta_data(instance_id or new_instance_id(name), hostname_for(name))
    return SeedFiles(user_data, meta, render_network_config(mac))
