"""An OpenStack config drive: the seed an exported golden reads on OpenStack.

cloud-init's ConfigDrive datasource finds a filesystem labelled `config-2` (ISO 9660 or
vfat) holding `openstack/latest/meta_data.json`, `user_data` and `network_data.json`.  The
lab boots its clones with NoCloud seeds (vm/seed.py); this builds the same boot's seed
in OpenStack's layout, so a test can prove a sealed golden boots from it instead: the
user-data is the NoCloud seed's, the instance id, host name and network (DHCP on the NIC
with QEMU's MAC) say the same things in OpenStack's words.

Written with pycdlib (Rock Ridge names, which Linux reads), like the NoCloud ISO.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from imagefactory.vm.qemu_args import DEFAULT_MAC
from imagefactory.vm.seed import SeedFiles

CONFIG_DRIVE_LABEL = "config-2"
_DIRS = (  # ISO 9660 path, Rock Ridge name, Joliet path
    ("/OPENSTAC", "openstack", "/openstack"),
    ("/OPENSTAC/LATEST", "latest", "/openstack/latest"),
)
# ISO 9660 level-3 names (8.3 d-characters); Linux reads the Rock Ridge names.
_FILES = {
    "meta_data.json": "/OPENSTAC/LATEST/METADATA.JSO;1",
    "user_data": "/OPENSTAC/LATEST/USERDATA.;1",
    "network_data.json": "/OPENSTAC/LATEST/NETWORKD.JSO;1",
}


@dataclass(frozen=True)
class ConfigDrive:
    """The files of `openstack/latest/`, by name."""

    files: dict[str, bytes]

    @classmethod
    def from_seed(cls, seed: SeedFiles, *, mac: str = DEFAULT_MAC) -> ConfigDrive:
        """The NoCloud seed `seed` as a config drive (same user-data, id and host name)."""
        meta: dict[str, Any] = yaml.safe_load(seed.meta_data)
        instance_id = str(meta["instance-id"])
        hostname = str(meta["local-hostname"])
        meta_data = {
            "uuid": instance_id,
            "name": hostname,
            "hostname": hostname,
            "availability_zone": "nova",
            "launch_index": 0,
        }
        network_data = {
            "links": [{"id": "nic0", "type": "phy", "ethernet_mac_address": mac.lower()}],
            "networks": [{"id": "net0", "type": "ipv4_dhcp", "link": "nic0"}],
            "services": [],
        }
        return cls(
            {
                "meta_data.json": json.dumps(meta_data, indent=2).encode(),
                "user_data": seed.user_data.encode(),
                "network_data.json": json.dumps(network_data, indent=2).encode(),
            }
        )

    def write_iso(self, path: Path) -> None:
        """An ISO labelled `config-2`; written under a temporary name, then renamed."""
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=CONFIG_DRIVE_LABEL)
        try:
            for iso_path, rr_name, joliet in _DIRS:
                iso.add_directory(iso_path, rr_name=rr_name, joliet_path=joliet)
            for name, data in self.files.items():
                iso.add_fp(
                    io.BytesIO(data),
                    len(data),
                    _FILES[name],
                    rr_name=name,
                    joliet_path=f"/openstack/latest/{name}",
                )
            tmp = path.with_name(path.name + ".part")
            iso.write(str(tmp))
            tmp.replace(path)
        finally:
            iso.close()


def read_config_drive(path: Path) -> tuple[str, dict[str, bytes]]:
    """The volume label and `openstack/latest/` files of a config drive ISO (for tests)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        files: dict[str, bytes] = {}
        for child in iso.list_children(rr_path="/openstack/latest"):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.rock_ridge.name().decode()
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/openstack/latest/{name}")
            files[name] = out.getvalue()
        return label, files
    finally:
        iso.close()
