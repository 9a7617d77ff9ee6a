"""The seal check verifies what the spec's `seal` section asked for, and nothing it kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.builder.seal_check import findings_in_root
from imagefactory.spec.model import SealSpec


def unsealed_root(tmp_path: Path) -> Path:
    """A root tree as a guest leaves it when no seal step ran."""
    root = tmp_path / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc" / "ssh" / "ssh_host_ed25519_key").write_text("key\n")
    (root / "var" / "lib" / "cloud" / "instances" / "iid-1").mkdir(parents=True)
    (root / "home" / "debian" / ".ssh").mkdir(parents=True)
    (root / "home" / "debian" / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAA\n")
    return root


def paths(root: Path, seal: SealSpec) -> set[str]:
    return {f.path for f in findings_in_root(root, default_user="debian", seal=seal)}


def test_the_default_seal_finds_every_identity_left(tmp_path: Path) -> None:
    assert paths(unsealed_root(tmp_path), SealSpec()) == {
        "/etc/machine-id",
        "/etc/ssh/ssh_host_ed25519_key",
        "/var/lib/cloud/instances",
        "/home/debian/.ssh/authorized_keys",
    }


@pytest.mark.parametrize(
    ("setting", "kept"),
    [
        ("ssh_host_keys", "/etc/ssh/ssh_host_ed25519_key"),
        ("machine_id", "/etc/machine-id"),
        ("cloud_init", "/var/lib/cloud/instances"),
    ],
)
def test_what_the_spec_keeps_is_not_a_finding(tmp_path: Path, setting: str, kept: str) -> None:
    root = unsealed_root(tmp_path)
    found = paths(root, SealSpec.model_validate({setting: False}))
    assert kept not in found
    assert found == paths(root, SealSpec()) - {kept}


def test_no_setting_keeps_the_build_login_key(tmp_path: Path) -> None:
    everything_kept = SealSpec.model_validate(
        {"machine_id": False, "ssh_host_keys": False, "cloud_init": False}
    )
    assert paths(unsealed_root(tmp_path), everything_kept) == {"/home/debian/.ssh/authorized_keys"}


def test_a_sealed_tree_with_host_keys_kept_passes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc" / "ssh").mkdir(parents=True)
    (root / "etc" / "machine-id").write_text("uninitialized\n")
    (root / "etc" / "ssh" / "ssh_host_rsa_key").write_text("key\n")
    assert findings_in_root(root, seal=SealSpec(ssh_host_keys=False)) == []
    assert [f.path for f in findings_in_root(root, seal=SealSpec())] == [
        "/etc/ssh/ssh_host_rsa_key"
    ]
