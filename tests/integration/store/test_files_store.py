"""What only the files store does: qcow2 goldens, manifests, overlays pinned by hard links,
symlink and foreign-file safety, and the space a written image takes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.store import qemu_img
from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.store.manifest import TEMP_DIR, temp_path
from imagefactory.store.safety import UnsafeOperation
from tests.fixtures.stores import MIB, ImageMaker, make_raw_image, same_content

LEAF = "klab-golden-debian"
REPO = Path(__file__).resolve().parents[3]


def listing(store: FileStore) -> list[str]:
    """The root's entries; the store's temporary directory only if something is in it."""
    names = sorted(p.name for p in store.root.iterdir())
    if TEMP_DIR in names and not any((store.root / TEMP_DIR).iterdir()):
        names.remove(TEMP_DIR)
    return names


def publish(store: FileStore, image: Path, build_id: str, fmt: str = "raw") -> None:
    volume = store.create_build_volume(LEAF, build_id, 64 * MIB)
    volume = store.write_image(volume, image, source_format=fmt)
    store.publish(volume, Provenance(distro="debian13", lineage="golden", build_id=build_id))


def test_written_golden_allocates_at_most_5_percent_over_the_image_data(
    file_store: FileStore, tmp_path: Path
) -> None:
    # 1 GiB virtual, 48 MiB of data, as a compressed qcow2 (like some vendor images): the
    # golden must allocate about the data, neither the virtual size nor the file size.
    raw = tmp_path / "big.raw"
    with raw.open("wb") as f:
        f.truncate(1024 * MIB)
        for i in range(12):
            f.seek(i * 80 * MIB)
            f.write(os.urandom(4 * MIB))
    source = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(source)], check=True)
    data = qemu_img.allocated_data(source, "qcow2")
    assert data == 48 * MIB

    volume = file_store.create_build_volume(LEAF, "b1", 1024 * MIB)
    volume = file_store.write_image(volume, source)
    golden = file_store.publish(volume, Provenance(distro="d", lineage="l", build_id="b1"))

    assert golden.path is not None
    assert golden.allocated == golden.path.stat().st_blocks * 512
    assert golden.allocated <= 1.05 * data, (golden.allocated, data)
    assert golden.virtual_size == 1024 * MIB


def test_golden_is_a_read_only_qcow2_with_a_manifest(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    publish(file_store, make_image(1), "b1")
    image, manifest_path = file_store.root / f"{LEAF}.qcow2", file_store.root / f"{LEAF}.json"
    assert stat.S_IMODE(image.stat().st_mode) == 0o444
    assert stat.S_IMODE(manifest_path.stat().st_mode) == 0o444
    assert qemu_img.detect_format(image) == "qcow2"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["role"] == "golden"
    assert manifest["inode"] == image.stat().st_ino
    assert manifest["provenance"]["distro"] == "debian13"
    assert manifest["provenance"]["build_id"] == "b1"
    assert listing(file_store) == [f"{LEAF}.json", f"{LEAF}.qcow2"]


def test_clone_overlay_is_backed_by_a_pin_not_by_the_golden_name(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    publish(file_store, make_image(1), "b1")
    clone = file_store.clone(LEAF, "run1")
    info = qemu_img.info(clone.path, "qcow2")
    pin = file_store.root / f"{LEAF}.clone-run1.origin.qcow2"
    assert info["backing-filename"] == pin.name
    assert pin.stat().st_ino == (file_store.root / f"{LEAF}.qcow2").stat().st_ino
    file_store.destroy_clone(clone)
    assert listing(file_store) == [f"{LEAF}.json", f"{LEAF}.qcow2"]


def test_symlinks_out_of_the_root_are_never_followed(
    file_store: FileStore, make_image: ImageMaker, tmp_path: Path
) -> None:
    publish(file_store, make_image(1), "b1")
    clone = file_store.clone(LEAF, "run1")
    victim = tmp_path / "victim.qcow2"
    qemu_img.create(victim, "qcow2", MIB)
    # Replace the clone's overlay by a symlink to a file outside the root.
    clone.path.unlink()
    clone.path.symlink_to(victim)
    with pytest.raises(UnsafeOperation, match="symbolic link"):
        file_store.destroy_clone(clone)
    assert victim.exists()

    # A manifest that is a symlink is no marker at all.
    outside_manifest = tmp_path / "manifest.json"
    outside_manifest.write_text(
        (file_store.root / f"{LEAF}.clone-run1.json").read_text(), encoding="utf-8"
    )
    link = file_store.root / f"{LEAF}.clone-other.json"
    link.symlink_to(outside_manifest)
    (file_store.root / f"{LEAF}.clone-other.qcow2").symlink_to(victim)
    with pytest.raises(UnsafeOperation):
        file_store.destroy_clone(f"{LEAF}.clone-other")
    assert victim.exists() and outside_manifest.exists()


def test_a_symlinked_root_subdirectory_is_outside_the_root(
    file_store: FileStore, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / f"{LEAF}.build-x.qcow2"
    victim.write_bytes(b"data")
    (file_store.root / "sub").symlink_to(elsewhere)
    with pytest.raises(UnsafeOperation, match="not directly under"):
        file_store.destroy_build_volume(f"sub/{LEAF}.build-x.qcow2")
    assert victim.exists()


def test_a_manifest_copied_to_another_name_is_not_a_marker(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    publish(file_store, make_image(1), "b1")
    clone = file_store.clone(LEAF, "run1")
    other = file_store.root / f"{LEAF}.clone-copied"
    qemu_img.create(other.with_suffix(".qcow2"), "qcow2", MIB)
    other.with_suffix(".json").write_text(
        (file_store.root / f"{LEAF}.clone-run1.json").read_text(), encoding="utf-8"
    )
    with pytest.raises(UnsafeOperation, match="marker"):
        file_store.destroy_clone(other.name)
    assert [c.name for c in file_store.list_clones()] == [clone.name]


def test_gc_leaves_foreign_files_alone(file_store: FileStore, make_image: ImageMaker) -> None:
    publish(file_store, make_image(1), "b1")
    foreign = ["notes.txt", "debian.qcow2", f"{LEAF}.retired-manual.qcow2", "x.json"]
    for name in foreign:
        (file_store.root / name).write_text("not the store's", encoding="utf-8")
    assert file_store.gc().removed == []
    assert all((file_store.root / name).exists() for name in foreign)
    assert file_store.get_golden(LEAF) is not None


def _crash(store: FileStore, point: str, code: str, *args: str) -> None:
    env = {
        **os.environ,
        "IMAGEFACTORY_CRASH_AT": point,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from imagefactory.store.files import FileStore\n"
        f"store = FileStore(sys.argv[1])\n{code}"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(store.root), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr


def test_gc_removes_temp_files_of_dead_writers_only(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    _crash(
        file_store,
        "files.write.converted",
        f"v = store.create_build_volume({LEAF!r}, 'b1', 64 << 20)\n"
        "store.write_image(v, Path(sys.argv[2]), source_format='raw')\n",
        str(make_image(1)),
    )
    temps = [f"{TEMP_DIR}/{p.name}" for p in (file_store.root / TEMP_DIR).iterdir()]
    assert len(temps) == 1
    # This process's own temporary file (its lease is alive) and files that only look like
    # the store's: none of them is the store's to remove.
    alive = temp_path(file_store.root / f"{LEAF}.json")
    alive.write_bytes(b"being written by this process")
    foreign = [
        file_store.root / ".mydata.tmp-999999-deadbeef",
        file_store.root / f".{LEAF}.json.tmp-999999-deadbeef",
        file_store.root / TEMP_DIR / f"notes.txt.tmp-{'0' * 32}-deadbeef",
    ]
    for path in foreign:
        path.write_bytes(b"not the store's")
    report = file_store.gc()
    assert sorted(report.removed) == sorted([temps[0], f"{LEAF}.build-b1"])
    assert alive.exists() and all(path.exists() for path in foreign)


def test_a_clone_interrupted_by_a_crash_is_removed_by_gc(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    publish(file_store, make_image(1), "b1")
    _crash(file_store, "files.clone.pinned", f"store.clone({LEAF!r}, 'run1')")
    assert file_store.list_clones() == []
    assert file_store.gc().removed == [f"{LEAF}.clone-run1"]
    assert listing(file_store) == [f"{LEAF}.json", f"{LEAF}.qcow2"]


def test_qcow2_source_and_raw_source_give_the_same_golden(
    file_store: FileStore, make_image: ImageMaker
) -> None:
    publish(file_store, make_image(1, "qcow2"), "b1", fmt="qcow2")
    clone = file_store.clone(LEAF)
    assert same_content(make_image(1), clone)


def test_store_directory_is_created_and_must_be_a_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a" / "b")
    assert store.root.is_dir() and store.spec == f"file:{store.root}"
    afile = make_raw_image(tmp_path / "plain", 0, size=MIB)
    with pytest.raises(Exception, match="files store"):
        FileStore(afile)
