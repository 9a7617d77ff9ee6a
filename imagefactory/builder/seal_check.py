"""Verify on the host, after shutdown, that the guest really sealed itself.

The seal hook runs inside the guest, so a bug there (or a hook that never ran) would ship
a golden whose clones all share one machine-id, SSH host keys and cloud-init instance.
Reading the volume after power-off is the only check that does not trust the guest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagefactory.builder.mount_image import mounted_root
from imagefactory.errors import ImageFactoryError
from imagefactory.spec.model import SealSpec
from imagefactory.testrun.inventory import GUEST_PATH as GUEST_INVENTORY
from imagefactory.testrun.inventory import MAX_BYTES as INVENTORY_MAX_BYTES
from imagefactory.testrun.inventory import InventoryError, keep_inventory


class SealCheckFailed(ImageFactoryError):
    """The volume still carries identity that sealing must remove."""


@dataclass(frozen=True)
class SealFinding:
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def findings_in_root(
    root: Path, *, default_user: str | None = None, seal: SealSpec | None = None
) -> list[SealFinding]:
    """What is wrong with a mounted root tree; empty when the seal holds.

    Only what the spec's `seal` section asked the guest to remove is checked: a spec that
    keeps the SSH host keys (`seal.ssh_host_keys: false`) ships them on purpose.  The build's
    login key is checked always: no setting keeps it.
    """
    seal = seal or SealSpec()
    problems: list[SealFinding] = []
    if seal.machine_id:
        problems += _machine_id_findings(root)
    if seal.ssh_host_keys:
        ssh_dir = root / "etc" / "ssh"
        if ssh_dir.is_dir():
            for key in sorted(ssh_dir.glob("ssh_host_*")):
                problems.append(SealFinding(f"/etc/ssh/{key.name}", "SSH host key present"))
    if seal.cloud_init:
        problems += _cloud_init_findings(root)
    # /var/lib/systemd/random-seed is not checked: the seal hook removes it, but
    # systemd-random-seed.service writes a fresh one while the guest shuts down, and systemd
    # never credits a seed file as entropy on its own (it is mixed with per-boot data).
    if default_user:
        keys = root / "home" / default_user / ".ssh" / "authorized_keys"
        if keys.is_file() and keys.stat().st_size > 0:
            problems.append(
                SealFinding(f"/home/{default_user}/.ssh/authorized_keys", "build key present")
            )
    return problems


def _machine_id_findings(root: Path) -> list[SealFinding]:
    problems = []
    machine_id = root / "etc" / "machine-id"
    if machine_id.is_file():
        content = machine_id.read_text(errors="replace").strip()
        if content not in ("", "uninitialized"):
            problems.append(SealFinding("/etc/machine-id", f"still set ({content[:12]}...)"))
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.is_file() and not dbus_id.is_symlink():
        problems.append(SealFinding("/var/lib/dbus/machine-id", "present"))
    return problems


def _cloud_init_findings(root: Path) -> list[SealFinding]:
    problems = []
    cloud = root / "var" / "lib" / "cloud"
    if (cloud / "instance").is_symlink() or (cloud / "instance").exists():
        problems.append(SealFinding("/var/lib/cloud/instance", "cloud-init instance present"))
    instances = cloud / "instances"
    if instances.is_dir() and any(instances.iterdir()):
        problems.append(SealFinding("/var/lib/cloud/instances", "cloud-init instances present"))
    if (cloud / "seed" / "nocloud").exists() or (cloud / "seed" / "nocloud-net").exists():
        problems.append(SealFinding("/var/lib/cloud/seed", "NoCloud seed copy present"))
    return problems


GUEST_FACTS = Path("etc/imagefactory/golden.json")


def read_guest_facts(root: Path) -> dict[str, Any]:
    """What the payload hooks recorded about the golden (versions, tools), if anything."""
    path = root / GUEST_FACTS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SealCheckFailed(f"/{GUEST_FACTS} is not valid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def keep_guest_inventory(root: Path, *, state: Path | None = None) -> str | None:
    """Keep the suite inventory the guest wrote (if any) on the host; its digest.

    A ztest golden's 80-golden-facts.sh writes it; a lean golden has none.  One that is
    there but unreadable or malformed is a bug in the guest, so the build fails here rather
    than publish a golden whose selections could not be checked.
    """
    path = root / GUEST_INVENTORY
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            data = handle.read(INVENTORY_MAX_BYTES + 1)
        return keep_inventory(data, state)
    except InventoryError as exc:
        raise SealCheckFailed(f"/{GUEST_INVENTORY}: {exc}") from None
    except OSError as exc:
        raise SealCheckFailed(f"cannot read /{GUEST_INVENTORY}: {exc.strerror}") from None


def inspect_sealed_volume(
    image: Path,
    image_format: str,
    *,
    default_user: str | None,
    seal: SealSpec | None = None,
    state: Path | None = None,
) -> dict[str, Any]:
    """Mount the image read-only, fail if anything identifying is left, return the facts
    (golden.json, plus `inventory_digest` once the suite inventory is kept in `state`)."""
    with mounted_root(image, image_format) as root:
        problems = findings_in_root(root, default_user=default_user, seal=seal)
        facts = read_guest_facts(root)
        if not problems:
            inventory = keep_guest_inventory(root, state=state)
            if inventory is not None:
                facts["inventory_digest"] = inventory
    if problems:
        listing = "; ".join(str(p) for p in problems)
        raise SealCheckFailed(
            f"seal verification failed: {listing}",
            hint="the seal hook (hooks/common/90-seal.sh) must run last; see the console log",
        )
    return facts
