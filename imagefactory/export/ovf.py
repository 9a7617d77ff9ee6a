"""The OVA's OVF 1.0 descriptor and its SHA-1 manifest.

Why OVF 1.0 with SHA-1: it is what both importers we target read -- VMware (ESXi, vCenter,
Workstation, ovftool) and VirtualBox.  OVF 2.0 allows SHA-256 manifests, but older ESXi
refuses OVF 2.0 packages and SHA-256 manifests in an OVF 1.0 package.  The SHA-1 manifest
guards against damage in transit, not forgery; the SHA256SUMS file next to the export is
the one to check against tampering.

The virtual hardware is what both importers map without questions: an AHCI (SATA)
controller with the disk, an E1000 NIC, CPUs and memory from the distro's spec.  The
golden's provenance is a ProductSection whose properties are its fields, so it survives
the import as vApp properties.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
RASD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD_NS = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
PRODUCT_CLASS = "org.openzfs.klab.imagefactory"
#: CIM_OperatingSystem "Linux 64-Bit": both importers map it to a generic 64-bit Linux.
OS_LINUX_64 = "101"
#: CIM ResourceType values (DSP1041).
RT_CPU, RT_MEMORY, RT_ETHERNET, RT_DISK, RT_SATA = "3", "4", "10", "17", "20"

for _prefix, _uri in (("ovf", OVF_NS), ("rasd", RASD_NS), ("vssd", VSSD_NS), ("xsi", XSI_NS)):
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class Machine:
    """What the descriptor says about the virtual machine and its disk."""

    name: str
    disk_file: str
    disk_file_size: int
    capacity: int
    cpus: int
    memory_mib: int
    product: str
    version: str
    properties: Mapping[str, str]


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, _q(OVF_NS, tag), {_q(OVF_NS, k): v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _item(hardware: ET.Element, **fields: str) -> None:
    """One <Item>; rasd elements must appear in alphabetical order (the schema's sequence)."""
    item = _sub(hardware, "Item")
    for key in sorted(fields):
        ET.SubElement(item, _q(RASD_NS, key)).text = fields[key]


def descriptor(machine: Machine) -> bytes:
    """The OVF 1.0 envelope for `machine`, as UTF-8 XML."""
    envelope = ET.Element(_q(OVF_NS, "Envelope"))
    refs = _sub(envelope, "References")
    _sub(refs, "File", href=machine.disk_file, id="file1", size=str(machine.disk_file_size))
    disks = _sub(envelope, "DiskSection")
    _sub(disks, "Info", "Virtual disk information")
    _sub(
        disks,
        "Disk",
        capacity=str(machine.capacity),
        capacityAllocationUnits="byte",
        diskId="vmdisk1",
        fileRef="file1",
        format=STREAM_OPTIMIZED,
    )
    networks = _sub(envelope, "NetworkSection")
    _sub(networks, "Info", "The logical networks")
    network = _sub(networks, "Network", name="nat")
    _sub(network, "Description", "The network the VM's NIC is attached to")

    system = _sub(envelope, "VirtualSystem", id=machine.name)
    _sub(system, "Info", "A golden image made by imagefactory")
    _sub(system, "Name", machine.name)
    product = _sub(system, "ProductSection", **{"class": PRODUCT_CLASS})
    _sub(product, "Info", "Provenance of the golden image this package was exported from")
    _sub(product, "Product", machine.product)
    _sub(product, "Vendor", "imagefactory")
    _sub(product, "Version", machine.version)
    for key, value in sorted(machine.properties.items()):
        _sub(product, "Property", key=key, type="string", userConfigurable="false", value=value)
    os_section = _sub(system, "OperatingSystemSection", id=OS_LINUX_64)
    _sub(os_section, "Info", "The guest operating system")
    _sub(os_section, "Description", "Linux 64-Bit")

    hardware = _sub(system, "VirtualHardwareSection")
    _sub(hardware, "Info", "Virtual hardware requirements")
    vssd = _sub(hardware, "System")
    for key, value in (
        ("ElementName", "Virtual Hardware Family"),
        ("InstanceID", "0"),
        ("VirtualSystemIdentifier", machine.name),
        ("VirtualSystemType", "vmx-10 virtualbox-2.2"),
    ):
        ET.SubElement(vssd, _q(VSSD_NS, key)).text = value
    items: list[dict[str, str]] = [  # InstanceID 1, 2...: the disk's Parent is the SATA's 3
        {
            "ElementName": f"{machine.cpus} virtual CPU(s)",
            "ResourceType": RT_CPU,
            "VirtualQuantity": str(machine.cpus),
        },
        {
            "AllocationUnits": "byte * 2^20",
            "ElementName": f"{machine.memory_mib} MiB of memory",
            "ResourceType": RT_MEMORY,
            "VirtualQuantity": str(machine.memory_mib),
        },
        {
            "Address": "0",
            "ElementName": "SATA controller 0",
            "ResourceSubType": "AHCI",
            "ResourceType": RT_SATA,
        },
        {
            "AddressOnParent": "0",
            "ElementName": "disk0",
            "HostResource": "ovf:/disk/vmdisk1",
            "Parent": "3",
            "ResourceType": RT_DISK,
        },
        {
            "AutomaticAllocation": "true",
            "Connection": "nat",
            "ElementName": "ethernet0",
            "ResourceSubType": "E1000",
            "ResourceType": RT_ETHERNET,
        },
    ]
    for instance, fields in enumerate(items, start=1):
        _item(hardware, InstanceID=str(instance), **fields)
    ET.indent(envelope)
    text = ET.tostring(envelope, encoding="unicode")
    # Elements in the default namespace, attributes `ovf:`-prefixed: the spelling VMware's
    # and VirtualBox's own exports use, which their readers are known to accept.  Tags
    # are the only place `<ovf:` can occur (text and attribute values are escaped).
    text = text.replace("<ovf:", "<").replace("</ovf:", "</")
    text = text.replace("<Envelope ", f'<Envelope xmlns="{OVF_NS}" ', 1)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n").encode()


def sha1_file(path: Path) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def manifest(entries: Iterable[tuple[str, str]]) -> bytes:
    """`SHA1(name)= hex` lines, the OVF 1.0 manifest format (name, SHA-1 hex)."""
    return "".join(f"SHA1({name})= {digest}\n" for name, digest in entries).encode()
