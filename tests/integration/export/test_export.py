"""Each export format, made by the real CLI from a small golden and checked with qemu-img:
same guest-visible contents as the golden, the promised format and subformat, provenance
and checksums next to it, nothing half-written left behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from imagefactory.export.formats import MIB, round_up_mib
from imagefactory.export.ovf import OVF_NS, PRODUCT_CLASS, RASD_NS, STREAM_OPTIMIZED
from imagefactory.store import qemu_img
from tests.integration.export.conftest import LEAF, ODD_SIZE, Exporter


def info(path: Path, fmt: str) -> dict[str, Any]:
    return qemu_img.info(path, fmt)


def same_as_golden(exporter: Exporter, path: Path, fmt: str) -> bool:
    assert exporter.golden.path is not None
    return qemu_img.compare(exporter.golden.path, "qcow2", path, fmt)


def only_results(exporter: Exporter, *names: str) -> None:
    """The directory holds the export, its sidecar and SHA256SUMS: no temporary file."""
    found = {p.name for p in exporter.out_dir.iterdir()}
    assert found == {*names, *(f"{n}.json" for n in names), "SHA256SUMS"}, found


def check_sums(exporter: Exporter) -> None:
    proc = subprocess.run(
        ["sha256sum", "--strict", "-c", "SHA256SUMS"],
        cwd=exporter.out_dir, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def check_sidecar(exporter: Exporter, out: Path, fmt: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(out.with_name(out.name + ".json").read_text())
    assert record["format"] == fmt and record["file"] == out.name
    assert record["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert record["golden"]["leaf"] == LEAF
    assert record["provenance"]["build_id"] == "b1"
    assert record["provenance"]["distro"] == "debian13"
    return record


@pytest.mark.parametrize(
    ("fmt", "qemu_format"),
    [("qcow2", "qcow2"), ("vmdk", "vmdk"), ("vhd", "vpc"), ("vhdx", "vhdx"), ("raw", "raw")],
)
def test_a_disk_format_holds_the_goldens_contents(
    exporter: Exporter, fmt: str, qemu_format: str
) -> None:
    out = exporter.export(fmt)
    assert info(out, qemu_format)["format"] == qemu_format
    assert same_as_golden(exporter, out, qemu_format)
    check_sidecar(exporter, out, fmt)
    check_sums(exporter)
    only_results(exporter, out.name)


def test_vmdk_is_stream_optimized(exporter: Exporter) -> None:
    out = exporter.export("vmdk")
    assert info(out, "vmdk")["format-specific"]["data"]["create-type"] == "streamOptimized"


def test_vhd_is_fixed_and_a_whole_mib(exporter: Exporter) -> None:
    assert ODD_SIZE % MIB != 0
    out = exporter.export("vhd")
    size = info(out, "vpc")["virtual-size"]
    assert size == round_up_mib(ODD_SIZE)
    # A fixed VHD is the disk's bytes plus a 512-byte footer; a dynamic one is sparse.
    assert out.stat().st_size == size + 512


def test_raw_is_sparse_and_qcow2_compressed(exporter: Exporter) -> None:
    raw = exporter.export("raw")
    assert raw.stat().st_size == ODD_SIZE
    assert raw.stat().st_blocks * 512 < ODD_SIZE // 2
    qcow2 = exporter.export("qcow2")
    check = subprocess.run(
        ["qemu-img", "check", "--output=json", "-f", "qcow2", str(qcow2)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(check.stdout)["compressed-clusters"] > 0


def test_gce_is_a_tar_gz_of_disk_raw(exporter: Exporter, tmp_path: Path) -> None:
    out = exporter.export("gce", "debian.tar.gz")
    with tarfile.open(out, "r:gz") as tar:
        assert tar.getnames() == ["disk.raw"]
    unpacked = tmp_path / "gce"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(out), "-C", str(unpacked)], check=True)
    assert same_as_golden(exporter, unpacked / "disk.raw", "raw")
    check_sidecar(exporter, out, "gce")
    check_sums(exporter)
    only_results(exporter, out.name)


def _ovf(text: bytes) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{{{OVF_NS}}}Envelope"
    return root


def test_ova_descriptor_first_manifest_verifies_contents_identical(
    exporter: Exporter, tmp_path: Path
) -> None:
    out = exporter.export("ova", "debian.ova")
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert names == [f"{LEAF}.ovf", f"{LEAF}-disk1.vmdk", f"{LEAF}.mf"]
        tar.extractall(tmp_path / "ova", filter="data")
    members = tmp_path / "ova"

    # The manifest: one SHA-1 line per other member, each matching.
    lines = (members / f"{LEAF}.mf").read_text().splitlines()
    assert len(lines) == 2
    for line in lines:
        left, digest = line.split("= ")
        name = left.removeprefix("SHA1(").removesuffix(")")
        assert hashlib.sha1((members / name).read_bytes()).hexdigest() == digest

    # The descriptor: disk, virtual hardware and product sections.
    ovf = _ovf((members / f"{LEAF}.ovf").read_bytes())
    ns = {"ovf": OVF_NS, "rasd": RASD_NS}
    ref = ovf.find("ovf:References/ovf:File", ns)
    assert ref is not None and ref.get(f"{{{OVF_NS}}}href") == f"{LEAF}-disk1.vmdk"
    assert int(ref.get(f"{{{OVF_NS}}}size", "")) == (members / f"{LEAF}-disk1.vmdk").stat().st_size
    disk = ovf.find("ovf:DiskSection/ovf:Disk", ns)
    assert disk is not None
    assert int(disk.get(f"{{{OVF_NS}}}capacity", "")) == ODD_SIZE
    assert disk.get(f"{{{OVF_NS}}}format") == STREAM_OPTIMIZED
    types = [
        t.text or "" for t in ovf.findall("ovf:VirtualSystem/ovf:VirtualHardwareSection/ovf:Item/"
                                    "rasd:ResourceType", ns)
    ]  # fmt: skip
    assert sorted(types, key=int) == ["3", "4", "10", "17", "20"]  # cpu, memory, nic, disk, sata
    product = ovf.find("ovf:VirtualSystem/ovf:ProductSection", ns)
    assert product is not None and product.get(f"{{{OVF_NS}}}class") == PRODUCT_CLASS
    props = {
        p.get(f"{{{OVF_NS}}}key"): p.get(f"{{{OVF_NS}}}value")
        for p in product.findall("ovf:Property", ns)
    }
    assert props["build_id"] == "b1" and props["distro"] == "debian13"

    vmdk = members / f"{LEAF}-disk1.vmdk"
    assert info(vmdk, "vmdk")["format-specific"]["data"]["create-type"] == "streamOptimized"
    assert same_as_golden(exporter, vmdk, "vmdk")
    check_sidecar(exporter, out, "ova")
    check_sums(exporter)
    only_results(exporter, out.name)


def test_two_exports_share_one_sha256sums(exporter: Exporter) -> None:
    a = exporter.export("raw")
    b = exporter.export("vhdx")
    check_sums(exporter)
    listed = (exporter.out_dir / "SHA256SUMS").read_text()
    assert a.name in listed and b.name in listed
    only_results(exporter, a.name, b.name)


def test_an_existing_output_is_kept_unless_forced(exporter: Exporter) -> None:
    out = exporter.out_dir / "taken.raw"
    out.write_text("keep me")
    proc = exporter.cli(LEAF, "--format", "raw", "--out", str(out))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0].startswith("imagefactory: error: ")
    assert "exists" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_text() == "keep me"
    proc = exporter.cli(LEAF, "--format", "raw", "--out", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert same_as_golden(exporter, out, "raw")


def test_an_unknown_golden_is_a_usage_error(exporter: Exporter) -> None:
    proc = exporter.cli("klab-golden-nosuch", "--format", "raw")
    assert proc.returncode == 2
    assert "no golden of that name" in proc.stderr and "Traceback" not in proc.stderr
    assert f"goldens here: {LEAF}" in proc.stderr
    assert list(exporter.out_dir.iterdir()) == []


def test_a_failed_conversion_leaves_nothing(exporter: Exporter) -> None:
    """qemu-img fails for real: the golden's image is replaced by a file that is not qcow2
    (the store's own digest check is not what is under test; its manifest stays)."""
    assert exporter.golden.path is not None
    path = exporter.golden.path
    path.chmod(0o644)
    path.write_bytes(b"not a qcow2 image" * 100)
    proc = exporter.cli(LEAF, "--format", "vhdx", "--out", "x.vhdx")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(exporter.out_dir.iterdir()) == []
