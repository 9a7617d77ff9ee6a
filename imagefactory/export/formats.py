"""The export formats: what qemu-img writes for each, and what the file is called.

Why these options:
- qcow2 is compressed (`-c`): an export is shipped, not run in place.
- vmdk is `streamOptimized`, the only VMDK ESXi imports from an upload and the one OVF
  packages carry; VirtualBox reads it too.
- vhd is the fixed subformat with `force_size`: Azure takes only fixed VHDs whose virtual
  size is a whole MiB, and without `force_size` qemu-img rounds the size to the VHD
  geometry (cylinders, heads, sectors) instead of keeping the one asked for.
- vhdx is Hyper-V's dynamic default.
- raw is sparse (holes for zeros).
- gce is a `tar.gz` holding `disk.raw`, the only layout Compute Engine's image import reads.
- ova is a tar of the OVF descriptor, the streamOptimized vmdk and the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class ExportFormat:
    name: str
    qemu_format: str
    """What `qemu-img convert -O` writes (for ova and gce: the disk inside the package)."""
    options: tuple[str, ...]
    """Extra `qemu-img convert` arguments."""
    extension: str
    whole_mib: bool = False
    """The virtual size must be a whole MiB (rounded up, the tail reads as zeros)."""
    packaged: bool = False
    """The disk goes into a tar (ova, gce) rather than being the export itself."""
    meaning: str = ""


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("qcow2", "qcow2", ("-c",), ".qcow2", meaning="compressed qcow2 (QEMU/KVM)"),
        ExportFormat(
            "vmdk",
            "vmdk",
            ("-o", "subformat=streamOptimized"),
            ".vmdk",
            meaning="streamOptimized VMDK (ESXi, VirtualBox)",
        ),
        ExportFormat(
            "vhd",
            "vpc",
            ("-o", "subformat=fixed,force_size=on"),
            ".vhd",
            whole_mib=True,
            meaning="fixed VHD, size a whole MiB (Azure)",
        ),
        ExportFormat("vhdx", "vhdx", (), ".vhdx", meaning="VHDX (Hyper-V)"),
        ExportFormat("raw", "raw", ("-S", "4k"), ".raw", meaning="sparse raw"),
        ExportFormat(
            "gce",
            "raw",
            ("-S", "4k"),
            ".tar.gz",
            packaged=True,
            meaning="tar.gz holding disk.raw (Compute Engine image import)",
        ),
        ExportFormat(
            "ova",
            "vmdk",
            ("-o", "subformat=streamOptimized"),
            ".ova",
            packaged=True,
            meaning="OVF 1.0 package, SHA-1 manifest (VMware, VirtualBox)",
        ),
    )
}


def round_up_mib(size: int) -> int:
    return -(-size // MIB) * MIB
