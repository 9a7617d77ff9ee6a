"""What only the zfs store does, checked on a real pool with the zfs command as a witness:
volblocksize, sparseness, the bytes on /dev/zvol, user properties, readonly, holds, the
snapshot names `zfs list` shows, and markers that must be local.

These run inside the ZFS-host guest (`pytest -m zfs` with IMAGEFACTORY_TEST_ZFS_ROOT set);
elsewhere they skip.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest

from imagefactory.store.base import Provenance, StoreError
from imagefactory.store.lzc import Lzc, ZfsUnavailable, load_libzfs_core
from imagefactory.store.safety import UnsafeOperation
from imagefactory.store.select import open_store
from imagefactory.store.zfs import HOLD_TAG, ZfsStore
from tests.fixtures.stores import IMAGE_SIZE, MIB, ImageMaker, build_ids

pytestmark = pytest.mark.zfs

LEAF = "klab-ztest-debian"


def zget(name: str, prop: str) -> tuple[str, str]:
    out = subprocess.run(
        ["zfs", "get", "-H", "-p", "-o", "value,source", prop, name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.rstrip("\n")
    value, source = out.split("\t")
    return value, source


def zfs(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["zfs", *args], capture_output=True, text=True, check=check)


def exists(name: str) -> bool:
    return zfs("list", name, check=False).returncode == 0


def provenance(build_id: str) -> Provenance:
    return Provenance(
        distro="debian13",
        lineage="ztest",
        build_id=build_id,
        zfs_version="2.3.9-0+deb13u1",
        suite_version="2.3.9-0+deb13u1",
        source_digest="sha256:" + "c" * 64,
        spec_digest="sha256:" + "d" * 64,
        built_at="2026-05-21T14:22:33Z",
        tool_version="0.1.0",
    )


def publish(store: ZfsStore, image: Path, build_id: str, volblocksize: int | None = None) -> None:
    volume = store.create_build_volume(LEAF, build_id, IMAGE_SIZE, volblocksize=volblocksize)
    volume = store.write_image(volume, image, source_format="raw")
    store.publish(volume, provenance(build_id))


def test_build_volume_is_sparse_with_the_requested_volblocksize(zfs_store: ZfsStore) -> None:
    volume = zfs_store.create_build_volume(LEAF, "b1", 100 * MIB + 1, volblocksize=65536)
    assert zget(volume.name, "volblocksize")[0] == "65536"
    assert volume.volblocksize == 65536
    assert volume.size == 100 * MIB + 65536  # rounded up to a whole block
    assert zget(volume.name, "volsize")[0] == str(volume.size)
    assert zget(volume.name, "refreservation")[0] == "0"  # sparse
    assert int(zget(volume.name, "referenced")[0]) < MIB
    assert zget(volume.name, "imagefactory:role") == ("build", "local")
    assert volume.path == Path("/dev/zvol") / volume.name and volume.path.exists()


def test_default_size_rounding_fits_any_default_volblocksize(zfs_store: ZfsStore) -> None:
    volume = zfs_store.create_build_volume(LEAF, "b1", 10 * MIB + 5)
    assert volume.size == 10 * MIB + 128 * 1024
    assert volume.size % int(zget(volume.name, "volblocksize")[0]) == 0


def test_invalid_volblocksize_is_refused_before_zfs_sees_it(zfs_store: ZfsStore) -> None:
    with pytest.raises(StoreError, match="volblocksize"):
        zfs_store.create_build_volume(LEAF, "b1", 10 * MIB, volblocksize=3000)
    assert build_ids(zfs_store) == []


def test_written_image_reads_back_byte_identical_from_the_zvol(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    raw = make_image(7)
    volume = zfs_store.create_build_volume(LEAF, "b1", 2 * IMAGE_SIZE, volblocksize=16384)
    volume = zfs_store.write_image(volume, make_image(7, "qcow2"))
    with volume.path.open("rb") as dev:
        head = dev.read(IMAGE_SIZE)
        tail = dev.read()
    assert hashlib.sha256(head).hexdigest() == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert len(tail) == volume.size - IMAGE_SIZE and tail.count(0) == len(tail)
    assert int(zget(volume.name, "referenced")[0]) < 12 * MIB  # zeros were not written
    assert zget(volume.name, "imagefactory:state")[0] == "written"


def test_golden_snapshot_carries_the_provenance_as_local_user_properties(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    publish(zfs_store, make_image(1), "b1")
    snap = f"{zfs_store.root}/{LEAF}@golden"
    for field, value in provenance("b1").to_properties().items():
        assert zget(snap, f"imagefactory:{field}") == (value, "local"), field
    assert zget(f"{zfs_store.root}/{LEAF}", "imagefactory:role") == ("golden", "local")
    golden = zfs_store.get_golden(LEAF)
    assert golden is not None and golden.provenance == provenance("b1")
    assert golden.name == snap and golden.path is None


def test_golden_volume_is_readonly(zfs_store: ZfsStore, make_image: ImageMaker) -> None:
    publish(zfs_store, make_image(1), "b1")
    assert zget(f"{zfs_store.root}/{LEAF}", "readonly") == ("on", "local")
    golden = zfs_store.get_golden(LEAF)
    assert golden is not None and golden.readonly
    # ...and the kernel enforces it: the golden's device cannot be opened for writing.
    with pytest.raises(OSError) as info:
        os.close(os.open(Path("/dev/zvol") / zfs_store.root / LEAF, os.O_WRONLY))
    assert info.value.errno == errno.EROFS


def test_golden_snapshot_is_held_and_cannot_be_destroyed(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    import libzfs_core

    publish(zfs_store, make_image(1), "b1")
    snap = f"{zfs_store.root}/{LEAF}@golden"
    assert HOLD_TAG.encode() in libzfs_core.lzc_get_holds(snap.encode())
    assert zfs("destroy", snap, check=False).returncode != 0
    with pytest.raises(libzfs_core.exceptions.SnapshotDestructionFailure):
        libzfs_core.lzc_destroy_snaps([snap.encode()], False)
    assert exists(snap)


def test_swap_with_a_live_clone_keeps_grep_golden_exact(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    root = zfs_store.root
    publish(zfs_store, make_image(1), "b1")
    clone = zfs_store.clone(LEAF, "run1")
    publish(zfs_store, make_image(2), "b2")

    snaps = zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r", root).stdout.split()
    assert [s for s in snaps if s.endswith("@golden")] == [f"{root}/{LEAF}@golden"]
    retired = [s for s in snaps if s.endswith("@retired")]
    assert len(retired) == 1 and retired[0].startswith(f"{root}/{LEAF}.retired-")
    assert zget(clone.name, "origin")[0] == retired[0]
    assert zget(retired[0], "imagefactory:role") == ("retired", "local")
    assert zget(retired[0].split("@")[0], "imagefactory:role") == ("retired", "local")
    assert zget(retired[0], "imagefactory:build_id")[0] == "b1"
    # neither the hold nor the clone lets anyone destroy the retired golden by hand
    assert zfs("destroy", retired[0], check=False).returncode != 0
    assert zfs_store.gc().removed == []
    assert exists(retired[0])


def test_clone_is_a_zfs_clone_with_its_marker_and_device(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    publish(zfs_store, make_image(1), "b1")
    clone = zfs_store.clone(LEAF, "run1")
    assert clone.name == f"{zfs_store.root}/{LEAF}.clone-run1"
    assert zget(clone.name, "origin")[0] == f"{zfs_store.root}/{LEAF}@golden"
    assert zget(clone.name, "imagefactory:role") == ("clone", "local")
    assert zget(clone.name, "readonly")[0] == "off"
    assert clone.path.exists() and clone.format == "raw"


def test_an_inherited_marker_is_not_a_marker(zfs_store: ZfsStore) -> None:
    root = zfs_store.root
    zfs("set", "imagefactory:role=clone", root)
    foreign = f"{root}/{LEAF}.clone-foreign"
    zfs("create", "-s", "-V", "1M", foreign)
    assert zget(foreign, "imagefactory:role") == ("clone", f"inherited from {root}")
    with pytest.raises(UnsafeOperation, match="marker"):
        zfs_store.destroy_clone(foreign)
    assert zfs_store.list_clones() == []
    assert exists(foreign)


def test_a_marked_dataset_outside_the_root_is_refused(zfs_store: ZfsStore) -> None:
    sibling = f"{zfs_store.root}-other"
    zfs("create", "-p", sibling)
    try:
        victim = f"{sibling}/{LEAF}.clone-x"
        zfs("create", "-s", "-V", "1M", "-o", "imagefactory:role=clone", victim)
        with pytest.raises(UnsafeOperation, match="not under"):
            zfs_store.destroy_clone(victim)
        assert exists(victim)
    finally:
        zfs("destroy", "-r", sibling)


def test_a_marked_filesystem_is_not_a_volume(zfs_store: ZfsStore) -> None:
    fs = f"{zfs_store.root}/{LEAF}.clone-fs"
    zfs("create", "-o", "imagefactory:role=clone", fs)
    with pytest.raises(UnsafeOperation, match="not a volume"):
        zfs_store.destroy_clone(fs)
    assert exists(fs)


def test_a_missing_root_dataset_names_the_fix(zfs_store_root: str) -> None:
    with pytest.raises(StoreError, match="does not exist") as info:
        open_store(f"zfs:{zfs_store_root}/missing")
    assert info.value.hint is not None and "zfs create -p" in info.value.hint


def test_libzfs_core_initialisation_failure_is_a_clear_error(zfs_store: ZfsStore) -> None:
    import libzfs_core

    lzc = Lzc(load_libzfs_core())

    def fails_like_a_missing_dev_zfs() -> None:
        raise libzfs_core.exceptions.ZFSInitializationFailed(errno.ENOENT)

    with pytest.raises(ZfsUnavailable, match="/dev/zfs") as info:
        lzc._call("open", "/dev/zfs", fails_like_a_missing_dev_zfs)
    assert info.value.hint is not None and "modprobe zfs" in info.value.hint


def _wait_for_link_to_go(path: Path, timeout: float = 60.0) -> bool:
    """udev removes /dev/zvol links after the zvol is gone; give it time to catch up."""
    deadline = time.monotonic() + timeout
    while path.exists() or path.is_symlink():
        if time.monotonic() > deadline:
            return False
        subprocess.run(["udevadm", "settle", "--timeout=10"], check=False)
        time.sleep(0.2)
    return True


def test_destroying_a_clone_removes_dataset_and_device_and_keeps_the_golden_sealed(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    import libzfs_core

    publish(zfs_store, make_image(1), "b1")
    clone = zfs_store.clone(LEAF, "run1")
    snap = f"{zfs_store.root}/{LEAF}@golden"
    assert zget(snap, "clones")[0] == clone.name
    zfs_store.destroy_clone(clone)
    assert not exists(clone.name)
    assert _wait_for_link_to_go(clone.path), f"{clone.path} outlived its zvol"
    assert zget(snap, "clones")[0] in ("", "-")
    assert HOLD_TAG.encode() in libzfs_core.lzc_get_holds(snap.encode())
    assert zget(f"{zfs_store.root}/{LEAF}", "readonly") == ("on", "local")


def test_republish_renames_the_old_golden_retired_keeps_it_held_and_gc_destroys_it(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    import libzfs_core

    root = zfs_store.root
    publish(zfs_store, make_image(1), "b1")
    publish(zfs_store, make_image(2), "b2")  # retires b1
    [retired] = [g for g in zfs_store.list_goldens(include_retired=True) if g.retired]
    dataset, _, snapshot = retired.name.partition("@")
    assert snapshot == "retired" and dataset.startswith(f"{root}/{LEAF}.retired-")
    assert zget(f"{root}/{LEAF}@golden", "imagefactory:build_id")[0] == "b2"
    assert zget(dataset, "imagefactory:role") == ("retired", "local")
    assert zget(retired.name, "imagefactory:role") == ("retired", "local")
    assert zget(retired.name, "imagefactory:build_id")[0] == "b1"
    assert zget(dataset, "readonly") == ("on", "local")
    assert HOLD_TAG.encode() in libzfs_core.lzc_get_holds(retired.name.encode())
    assert zfs("destroy", retired.name, check=False).returncode != 0

    assert zfs_store.gc().removed == [dataset.rsplit("/", 1)[1]]
    assert not exists(dataset)
    listed = zfs("list", "-H", "-o", "name", "-t", "all", "-r", root).stdout.split()
    assert listed == [root, f"{root}/{LEAF}", f"{root}/{LEAF}@golden"]


def test_listed_goldens_report_what_zfs_itself_shows(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    publish(zfs_store, make_image(1), "b1", volblocksize=16384)
    publish(zfs_store, make_image(2), "b2", volblocksize=65536)  # retires b1
    clone = zfs_store.clone(LEAF, "run1")
    goldens = zfs_store.list_goldens(include_retired=True)
    assert [(g.provenance.build_id, g.retired) for g in goldens] == [("b2", False), ("b1", True)]
    for golden in goldens:
        dataset = golden.name.split("@")[0]
        assert golden.virtual_size == int(zget(golden.name, "volsize")[0]) == IMAGE_SIZE
        assert golden.allocated == int(zget(golden.name, "referenced")[0])
        assert int(golden.created.timestamp()) == int(zget(golden.name, "creation")[0])
        assert golden.readonly and zget(dataset, "readonly")[0] == "on"
        for field, value in golden.provenance.to_properties().items():
            assert zget(golden.name, f"imagefactory:{field}")[0] == value, field
    assert zget(goldens[0].name.split("@")[0], "volblocksize")[0] == "65536"
    assert goldens[0].clones == (clone.name,) and goldens[1].clones == ()
    assert zfs_store.get_golden(LEAF) == goldens[0]


def _with_partition_table(image: Path) -> Path:
    """Give a raw test image an MBR with one Linux partition (1 MiB to the end), the way
    every real golden is partitioned, so the kernel makes partition devices of its zvols."""
    sectors = image.stat().st_size // 512
    entry = bytes([0x00, 0, 0, 0, 0x83, 0, 0, 0])
    entry += (2048).to_bytes(4, "little") + (sectors - 2048).to_bytes(4, "little")
    with image.open("r+b") as f:
        f.seek(446)
        f.write(entry + bytes(48) + b"\x55\xaa")
    return image


def _wait_for_link(path: Path, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        subprocess.run(["udevadm", "settle", "--timeout=10"], check=False)
        time.sleep(0.2)
    return True


def partition_links(root: str) -> dict[str, str]:
    """The `-partN` links under the store's root: link name -> device it points at."""
    directory = Path("/dev/zvol") / root
    return {
        link.name: link.resolve().name
        for link in sorted(directory.glob("*-part*"))
        if link.is_symlink()
    }


def test_partition_links_follow_their_zvol_through_write_publish_retire_and_gc(
    zfs_store: ZfsStore, make_image: ImageMaker
) -> None:
    root = zfs_store.root
    image = _with_partition_table(make_image(5))
    volume = zfs_store.create_build_volume(LEAF, "b1", IMAGE_SIZE)
    volume = zfs_store.write_image(volume, image, source_format="raw")
    build_part = Path(f"{volume.path}-part1")
    assert _wait_for_link(build_part), f"no {build_part}: the kernel saw no partition table"
    # Rewriting destroys and recreates the zvol while udev knows its partitions.
    volume = zfs_store.write_image(volume, image, source_format="raw")
    assert _wait_for_link(build_part)

    zfs_store.publish(volume, provenance("b1"))
    first = (Path("/dev/zvol") / root / LEAF).resolve().name
    # No link named like the build volume may lead into the golden.
    assert partition_links(root) == {f"{LEAF}-part1": f"{first}p1"}

    publish(zfs_store, image, "b2")  # retires b1
    second = (Path("/dev/zvol") / root / LEAF).resolve().name
    retired = next(g for g in zfs_store.list_goldens(include_retired=True) if g.retired)
    retired_child = retired.name.split("@")[0].rsplit("/", 1)[1]
    assert partition_links(root) == {
        f"{LEAF}-part1": f"{second}p1",
        f"{retired_child}-part1": f"{first}p1",
    }

    clone = zfs_store.clone(LEAF, "run1")
    clone_part = Path(f"{clone.path}-part1")
    assert _wait_for_link(clone_part)
    with clone.path.open("rb") as dev:
        assert hashlib.sha256(dev.read()).digest() == hashlib.sha256(image.read_bytes()).digest()
    zfs_store.destroy_clone(clone)
    assert _wait_for_link_to_go(clone_part) and _wait_for_link_to_go(clone.path)
    zfs_store.gc()
    subprocess.run(["udevadm", "settle", "--timeout=30"], check=False)
    assert partition_links(root) == {f"{LEAF}-part1": f"{second}p1"}
