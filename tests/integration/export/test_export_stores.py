"""The export reads a golden on either backend and leaves the store as it was: a files
golden directly, a zvol golden through a temporary clone the store makes and destroys
(snapshot devices are hidden).  The zfs half runs in the ZFS-host guest (`-m zfs`)."""

from __future__ import annotations

from pathlib import Path

from imagefactory.export.export import ExportRequest, export_golden
from imagefactory.export.formats import FORMATS
from imagefactory.store import qemu_img
from imagefactory.store.base import Provenance, Store
from tests.fixtures.stores import IMAGE_SIZE, ImageMaker


def test_export_reads_the_golden_and_leaves_no_clone(
    store: Store, make_image: ImageMaker, tmp_path: Path
) -> None:
    image = make_image(11)
    volume = store.create_build_volume("klab-golden-rocky", "b1", IMAGE_SIZE)
    volume = store.write_image(volume, image, source_format="raw")
    golden = store.publish(volume, Provenance(distro="rocky9", lineage="lean", build_id="b1"))
    out = tmp_path / "rocky.vmdk"
    said: list[str] = []
    result = export_golden(
        ExportRequest(store=store, golden=golden, format=FORMATS["vmdk"], out=out, progress=False),
        say=said.append,
    )
    assert result.path == out and out.is_file()
    assert qemu_img.compare(image, "raw", out, "vmdk")
    assert store.list_clones() == []
    assert store.get_golden("klab-golden-rocky") == golden
    assert any("converting klab-golden-rocky to vmdk" in line for line in said)
