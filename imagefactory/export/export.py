"""One export, in the order that keeps every promise of `imagefactory export`:

1. read the golden (directly, or through a temporary clone of a zvol golden);
2. convert it with qemu-img into a hidden work directory next to the output (same
   filesystem, so the final rename cannot copy), with a progress bar on a terminal;
3. package it (OVA, GCE) and hash the result;
4. write the provenance sidecar, then rename the export to its name -- so the export never
   appears half-written or without its provenance -- then update SHA256SUMS.

Whatever fails or is interrupted, the work directory goes and the golden is untouched.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from imagefactory import __version__
from imagefactory.atomic import fsync_dir, fsync_file
from imagefactory.export import ovf
from imagefactory.export.convert import convert
from imagefactory.export.formats import ExportFormat, round_up_mib
from imagefactory.export.package import GCE_MEMBER, write_gce, write_ova
from imagefactory.export.progress import percent_bar
from imagefactory.export.sidecar import sha256_file, sidecar_path, update_sums, write_sidecar
from imagefactory.export.source import golden_image
from imagefactory.store import qemu_img
from imagefactory.store.base import Golden, Store

log = structlog.get_logger(__name__)

SCHEMA = "imagefactory-export/1"


@dataclass(frozen=True)
class ExportRequest:
    store: Store
    golden: Golden
    format: ExportFormat
    out: Path
    cpus: int = 2
    memory_mib: int = 2048
    progress: bool | None = None
    """None: a bar when stderr is a terminal."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    sidecar: Path
    sums: Path
    sha256: str
    size: int
    disk_virtual_size: int
    seconds: float


Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _disk(req: ExportRequest, work: Path, say: Say) -> tuple[Path, int]:
    """The converted disk in `work`, and its virtual size."""
    fmt, golden = req.format, req.golden
    names = {"gce": GCE_MEMBER, "ova": f"{golden.leaf}-disk1.vmdk"}
    disk = work / names.get(fmt.name, f"{golden.leaf}{fmt.extension}")
    size = golden.virtual_size
    with golden_image(req.store, golden) as image:
        source, source_format = image.path, image.format
        if fmt.whole_mib and size != round_up_mib(size):
            # An overlay of the rounded size over the golden: the added tail reads as zeros,
            # nothing is copied to make it.
            size = round_up_mib(size)
            overlay = work / "whole-mib.qcow2"
            qemu_img.create(
                overlay, "qcow2", size, backing=str(source.resolve()), backing_format=source_format
            )
            source, source_format = overlay, "qcow2"
        say(f"converting {golden.leaf} to {fmt.name}: {fmt.meaning}")
        with percent_bar(f"{golden.leaf} → {fmt.name}", enabled=req.progress) as advance:
            convert(source, source_format, disk, fmt, advance=advance)
    return disk, size


def _ova(req: ExportRequest, work: Path, disk: Path, capacity: int, say: Say) -> Path:
    leaf = req.golden.leaf
    prov = req.golden.provenance
    machine = ovf.Machine(
        name=leaf,
        disk_file=disk.name,
        disk_file_size=disk.stat().st_size,
        capacity=capacity,
        cpus=req.cpus,
        memory_mib=req.memory_mib,
        product=f"{leaf} ({prov.distro}, {prov.lineage} lineage)",
        version=prov.build_id or "unknown",
        properties=prov.to_properties(),
    )
    descriptor = work / f"{leaf}.ovf"
    descriptor.write_bytes(ovf.descriptor(machine))
    manifest = work / f"{leaf}.mf"
    say("hashing the OVA's members (SHA-1 manifest)")
    manifest.write_bytes(ovf.manifest((p.name, ovf.sha1_file(p)) for p in (descriptor, disk)))
    package = work / "package.ova"
    say("writing the OVA")
    write_ova(package, [descriptor, disk, manifest])
    return package


def _record(req: ExportRequest, sha256: str, size: int, disk_virtual_size: int) -> dict[str, Any]:
    golden = req.golden
    return {
        "schema": SCHEMA,
        "file": req.out.name,
        "format": req.format.name,
        "format_meaning": req.format.meaning,
        "size": size,
        "sha256": sha256,
        "disk_virtual_size": disk_virtual_size,
        "exported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "exported_by": f"imagefactory {__version__}",
        "golden": {
            "leaf": golden.leaf,
            "name": golden.name,
            "store": golden.store,
            "virtual_size": golden.virtual_size,
            "created": golden.created.isoformat(),
        },
        "provenance": golden.provenance.to_properties(),
    }


def export_golden(req: ExportRequest, *, say: Say = _quiet) -> ExportResult:
    """Export `req.golden`; see the module docstring for the order of the steps."""
    started = time.monotonic()
    out = req.out
    work = out.parent / f".{out.name}.{secrets.token_hex(4)}.export"
    work.mkdir(mode=0o700)
    try:
        disk, disk_size = _disk(req, work, say)
        if req.format.name == "ova":
            final = _ova(req, work, disk, disk_size, say)
        elif req.format.name == "gce":
            say("writing the tar.gz")
            final = work / "package.tar.gz"
            write_gce(final, disk)
        else:
            final = disk
        say("hashing the export (SHA-256)")
        sha256 = sha256_file(final)
        size = final.stat().st_size
        fsync_file(final)
        final.chmod(0o644)
        sidecar = sidecar_path(out)
        write_sidecar(sidecar, _record(req, sha256, size, disk_size))
        final.replace(out)
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sums = update_sums(out.parent, {out.name: sha256, sidecar.name: sha256_file(sidecar)})
    seconds = time.monotonic() - started
    log.info("export.done", golden=req.golden.leaf, format=req.format.name, path=str(out))
    return ExportResult(out, sidecar, sums, sha256, size, disk_size, seconds)
