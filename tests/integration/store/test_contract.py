"""The store contract, run against every backend (files here; zfs in the ZFS-host guest).

Real qemu-img writes and compares the images, real qemu-io writes into clones as a guest
would, and the zfs parameter runs against a real pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.store import qemu_img
from imagefactory.store.base import (
    AlreadyInStore,
    BuildVolume,
    Golden,
    NotInStore,
    Provenance,
    Store,
    StoreError,
)
from imagefactory.store.files import FileStore
from imagefactory.store.manifest import TEMP_DIR
from imagefactory.store.owner import current_owner
from imagefactory.store.safety import UnsafeOperation
from imagefactory.store.zfs import ZfsStore
from tests.fixtures.stores import (
    IMAGE_SIZE,
    MIB,
    ImageMaker,
    build_ids,
    golden_content_is,
    same_content,
    scribble,
)

LEAF = "klab-ztest-fedora"
REPO = Path(__file__).resolve().parents[3]


def provenance(build_id: str, **extra: str) -> Provenance:
    return Provenance(
        distro="fedora44",
        lineage="ztest",
        build_id=build_id,
        zfs_version="2.4.1",
        suite_version="2.4.1",
        source_digest="sha256:" + "a" * 64,
        spec_digest="sha256:" + "b" * 64,
        **extra,
    )


def built(store: Store, image: Path, build_id: str, leaf: str = LEAF) -> BuildVolume:
    volume = store.create_build_volume(leaf, build_id, IMAGE_SIZE)
    return store.write_image(volume, image, source_format="raw")


def publish(store: Store, image: Path, build_id: str, leaf: str = LEAF) -> None:
    store.publish(built(store, image, build_id, leaf), provenance(build_id))


def allocated(store: Store, volume: BuildVolume) -> int:
    if isinstance(store, ZfsStore):
        out = subprocess.run(
            ["zfs", "get", "-H", "-p", "-o", "value", "referenced", volume.name],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout)
    return volume.path.stat().st_blocks * 512


def make_foreign(store: Store, child: str) -> str:
    """Something under the store's root, named like the store's own, without a marker."""
    if isinstance(store, ZfsStore):
        name = f"{store.root}/{child}"
        subprocess.run(["zfs", "create", "-s", "-V", "1M", name], check=True)
        return name
    assert isinstance(store, FileStore)
    path = store.root / f"{child}.qcow2"
    qemu_img.create(path, "qcow2", MIB)
    return str(path)


def still_there(store: Store, name: str) -> bool:
    if isinstance(store, ZfsStore):
        return subprocess.run(["zfs", "list", name], capture_output=True).returncode == 0
    return Path(name).exists()


def retired_stamp(golden: Golden) -> str:
    """The stamp part of a retired golden's name, on either backend."""
    return golden.name.split(".retired-")[1].split("@")[0].removesuffix(".qcow2")


# --- build volumes -----------------------------------------------------------------------


def test_build_volume_is_created_sized_and_sparse(store: Store) -> None:
    volume = store.create_build_volume(LEAF, "b1", 1024 * MIB)
    assert volume.size >= 1024 * MIB
    assert volume.path.exists()
    assert allocated(store, volume) < 2 * MIB
    assert build_ids(store) == ["b1"]
    assert volume.owner == current_owner()


def test_creating_an_existing_build_volume_fails(store: Store) -> None:
    store.create_build_volume(LEAF, "b1", 64 * MIB)
    with pytest.raises(AlreadyInStore):
        store.create_build_volume(LEAF, "b1", 64 * MIB)


def test_written_image_reads_back_identical(store: Store, make_image: ImageMaker) -> None:
    image = make_image(1, "qcow2")
    volume = store.create_build_volume(LEAF, "b1", IMAGE_SIZE)
    volume = store.write_image(volume, image)
    assert qemu_img.compare(image, "qcow2", volume.path, volume.format)
    assert allocated(store, volume) < 12 * MIB  # 6 MiB of data in 64 MiB: stays sparse


def test_rewriting_a_volume_replaces_its_content(store: Store, make_image: ImageMaker) -> None:
    volume = built(store, make_image(1), "b1")
    scribble(volume, offset=20 * MIB)
    volume = store.write_image(volume, make_image(2), source_format="raw")
    assert same_content(make_image(2), volume)


def test_writing_a_larger_image_grows_the_volume(store: Store, make_image: ImageMaker) -> None:
    volume = store.create_build_volume(LEAF, "b1", 16 * MIB)
    volume = store.write_image(volume, make_image(1), source_format="raw")
    assert volume.size >= IMAGE_SIZE
    assert same_content(make_image(1), volume)


def test_grow_enlarges_and_never_shrinks(store: Store, make_image: ImageMaker) -> None:
    volume = built(store, make_image(1), "b1")
    grown = store.grow(volume, 256 * MIB)
    assert grown.size >= 256 * MIB
    assert qemu_img.virtual_size(grown.path, grown.format) == grown.size
    assert same_content(make_image(1), grown)
    with pytest.raises(StoreError, match="shrink"):
        store.grow(grown, 128 * MIB)


def test_destroy_build_volume_removes_it(store: Store) -> None:
    volume = store.create_build_volume(LEAF, "b1", 64 * MIB)
    store.destroy_build_volume(volume)
    assert build_ids(store) == []
    assert not still_there(store, volume.name)


# --- publish -----------------------------------------------------------------------------


def test_publish_makes_a_read_only_golden_with_provenance(
    store: Store, make_image: ImageMaker
) -> None:
    volume = built(store, make_image(1), "b1")
    golden = store.publish(volume, provenance("b1"))
    assert golden.leaf == LEAF and not golden.retired and golden.readonly
    assert golden.provenance == provenance("b1", built_at=golden.provenance.built_at)
    assert golden.provenance.role == "golden"
    assert golden.virtual_size == IMAGE_SIZE
    assert 0 < golden.allocated < 12 * MIB
    assert store.get_golden(LEAF) is not None
    assert store.get_golden(LEAF) == golden
    assert store.list_goldens() == [golden]
    assert build_ids(store) == []
    assert golden_content_is(store, LEAF, make_image(1))


def test_publish_refuses_provenance_of_another_build(store: Store, make_image: ImageMaker) -> None:
    volume = built(store, make_image(1), "b1")
    with pytest.raises(StoreError, match="build_id"):
        store.publish(volume, provenance("b2"))
    assert store.get_golden(LEAF) is None


def test_goldens_of_several_leaves_are_listed_by_leaf(store: Store, make_image: ImageMaker) -> None:
    publish(store, make_image(1), "b1", leaf="klab-golden-debian")
    publish(store, make_image(2), "b2", leaf="klab-ztest-fedora-pr-12345")
    assert [g.leaf for g in store.list_goldens()] == [
        "klab-golden-debian",
        "klab-ztest-fedora-pr-12345",
    ]
    assert store.get_golden("klab-ztest-fedora") is None


def test_republish_swaps_atomically_while_a_clone_of_the_old_golden_works(
    store: Store, make_image: ImageMaker
) -> None:
    publish(store, make_image(1), "b1")
    old_clone = store.clone(LEAF, "run1")
    publish(store, make_image(2), "b2")

    golden = store.get_golden(LEAF)
    assert golden is not None and golden.provenance.build_id == "b2"
    assert golden_content_is(store, LEAF, make_image(2))
    assert same_content(make_image(1), old_clone)  # the old clone still sees the old data
    scribble(old_clone)  # ...and stays writable
    goldens = store.list_goldens(include_retired=True)
    assert [(g.provenance.build_id, g.retired) for g in goldens] == [("b2", False), ("b1", True)]
    retired = goldens[1]
    assert retired.clones == (old_clone.name,)
    assert retired.provenance.role == "retired"

    report = store.gc()
    assert report.removed == []
    assert [name for name, _ in report.kept] == [f"{LEAF}.retired-{retired_stamp(retired)}"]
    store.destroy_clone(old_clone)
    report = store.gc()
    assert len(report.removed) == 1
    assert [g.provenance.build_id for g in store.list_goldens(include_retired=True)] == ["b2"]


# --- clones ------------------------------------------------------------------------------


def test_clone_is_writable_and_leaves_the_golden_untouched(
    store: Store, make_image: ImageMaker
) -> None:
    publish(store, make_image(1), "b1")
    clone = store.clone(LEAF, "run1")
    assert clone.leaf == LEAF and clone.clone_id == "run1" and clone.origin_build_id == "b1"
    assert same_content(make_image(1), clone)
    scribble(clone)
    assert not same_content(make_image(1), clone)
    assert golden_content_is(store, LEAF, make_image(1))
    assert [c.name for c in store.list_clones(LEAF)] == [clone.name]
    golden = store.get_golden(LEAF)
    assert golden is not None and golden.clones == (clone.name,)
    with pytest.raises(AlreadyInStore):
        store.clone(LEAF, "run1")
    store.destroy_clone(clone.name)
    assert store.list_clones() == []


def test_cloning_a_missing_golden_fails(store: Store) -> None:
    with pytest.raises(NotInStore):
        store.clone("klab-golden-rocky")


# --- gc and ownership --------------------------------------------------------------------


def _create_in_child_process(store: Store, build_id: str) -> None:
    code = (
        "import sys; from imagefactory.store.select import open_store; "
        f"open_store(sys.argv[1]).create_build_volume({LEAF!r}, {build_id!r}, 64 << 20)"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    subprocess.run([sys.executable, "-c", code, store.spec], check=True, env=env, cwd=REPO)


def test_gc_removes_abandoned_build_volumes_and_keeps_running_ones(store: Store) -> None:
    _create_in_child_process(store, "dead")
    mine = store.create_build_volume(LEAF, "alive", 64 * MIB)
    report = store.gc()
    assert len(report.removed) == 1 and "dead" in report.removed[0]
    assert build_ids(store) == [mine.build_id]


def test_gc_dry_run_changes_nothing(store: Store) -> None:
    _create_in_child_process(store, "dead")
    assert len(store.gc(dry_run=True).removed) == 1
    assert build_ids(store) == ["dead"]


def test_open_build_volume_adopts_an_abandoned_volume(store: Store) -> None:
    _create_in_child_process(store, "resumed")
    volume = store.open_build_volume(LEAF, "resumed")
    assert volume is not None and volume.owner == current_owner()
    assert store.gc().removed == []
    assert store.open_build_volume(LEAF, "never-made") is None


# --- safety ------------------------------------------------------------------------------


def test_clone_operations_refuse_a_golden(store: Store, make_image: ImageMaker) -> None:
    publish(store, make_image(1), "b1")
    golden_name = f"{store.root}/{LEAF}" if isinstance(store, ZfsStore) else f"{LEAF}.qcow2"
    with pytest.raises(UnsafeOperation):
        store.destroy_clone(golden_name)
    with pytest.raises(UnsafeOperation):
        store.destroy_build_volume(golden_name)
    assert golden_content_is(store, LEAF, make_image(1))


def test_unmarked_objects_are_refused(store: Store) -> None:
    clone_name = make_foreign(store, f"{LEAF}.clone-foreign")
    build_name = make_foreign(store, f"{LEAF}.build-foreign")
    with pytest.raises(UnsafeOperation, match="marker"):
        store.destroy_clone(clone_name)
    with pytest.raises(UnsafeOperation, match="marker"):
        store.destroy_build_volume(build_name)
    forged = BuildVolume(
        leaf=LEAF,
        build_id="foreign",
        name=build_name,
        path=Path(build_name),
        format="raw",
        size=MIB,
        store=store.spec,
        owner="",
    )
    with pytest.raises(UnsafeOperation, match="marker"):
        store.publish(forged, provenance("foreign"))
    assert store.gc().removed == []
    assert still_there(store, clone_name) and still_there(store, build_name)


def test_names_outside_the_root_are_refused(store: Store) -> None:
    if isinstance(store, ZfsStore):
        outside = [
            f"{store.root.rsplit('/', 1)[0]}/{LEAF}.clone-x",
            f"{store.root}/../{LEAF}.clone-x",
            f"{store.root}/nested/{LEAF}.clone-x",
            f"{store.root}/{LEAF}.clone-x@golden",
            "rpool",
        ]
    else:
        assert isinstance(store, FileStore)
        outside = [
            f"/etc/{LEAF}.clone-x.qcow2",
            f"../{LEAF}.clone-x.qcow2",
            f"{store.root}/../{store.root.name}/{LEAF}.clone-x.qcow2",
            f"{store.root}/sub/{LEAF}.clone-x.qcow2",
            "/etc/passwd",
        ]
    for name in outside:
        with pytest.raises(UnsafeOperation):
            store.destroy_clone(name)
        with pytest.raises(UnsafeOperation):
            store.destroy_build_volume(name)


# --- crash safety ------------------------------------------------------------------------

# (backend, crash point, build id that must be the live golden afterwards: "b1" = rolled
# back, "b2" = rolled forward)
CRASHES = [
    ("file", "files.publish.pending", "b1"),
    ("file", "files.publish.retired-manifest", "b1"),
    ("file", "files.publish.retired-link", "b1"),
    ("file", "files.publish.committed", "b2"),
    ("zfs", "zfs.publish.snapshot", "b1"),
    ("zfs", "zfs.publish.pending", "b1"),
    ("zfs", "zfs.retire.renamed", "b2"),
    ("zfs", "zfs.publish.retired", "b2"),
    ("zfs", "zfs.publish.renamed", "b2"),
]
CRASH_PARAMS = [
    pytest.param(*case, id=case[1], marks=[pytest.mark.zfs] if case[0] == "zfs" else [])
    for case in CRASHES
]

_PUBLISH_SCRIPT = """
import sys
from pathlib import Path
from imagefactory.store.base import Provenance
from imagefactory.store.select import open_store
store = open_store(sys.argv[1])
volume = store.create_build_volume(sys.argv[2], "b2", 64 << 20)
volume = store.write_image(volume, Path(sys.argv[3]), source_format="raw")
store.publish(volume, Provenance(distro="fedora44", lineage="ztest", build_id="b2"))
"""


def _crash_publish(store: Store, image: Path, point: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IMAGEFACTORY_CRASH_AT": point,
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-c", _PUBLISH_SCRIPT, store.spec, LEAF, str(image)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(("backend", "point", "expected"), CRASH_PARAMS)
def test_publish_killed_at_any_step_leaves_a_consistent_store(
    request: pytest.FixtureRequest, make_image: ImageMaker, backend: str, point: str, expected: str
) -> None:
    store: Store = request.getfixturevalue(f"{backend}_store")
    publish(store, make_image(1), "b1")
    old_clone = store.clone(LEAF, "run1")

    proc = _crash_publish(store, make_image(2), point)
    assert proc.returncode == -9, proc.stderr  # really killed at that point

    store.gc()
    golden = store.get_golden(LEAF)
    assert golden is not None and golden.provenance.build_id == expected
    assert golden_content_is(store, LEAF, make_image(1 if expected == "b1" else 2))
    assert same_content(make_image(1), old_clone)
    assert build_ids(store) == []
    retired = [g for g in store.list_goldens(include_retired=True) if g.retired]
    assert [g.provenance.build_id for g in retired] == ([] if expected == "b1" else ["b1"])
    if isinstance(store, FileStore):
        hidden = [p.name for p in store.root.iterdir() if p.name.startswith(".")]
        assert hidden in ([], [TEMP_DIR]) and not any((store.root / TEMP_DIR).glob("*"))
    # and the store works on: a new publish and the old clone's cleanup succeed
    publish(store, make_image(3), "b3")
    store.destroy_clone(old_clone)
    store.gc()
    assert [g.provenance.build_id for g in store.list_goldens(include_retired=True)] == ["b3"]


def test_first_publish_killed_before_commit_leaves_no_golden(
    store: Store, make_image: ImageMaker
) -> None:
    point = "files.publish.pending" if store.kind == "file" else "zfs.publish.pending"
    assert _crash_publish(store, make_image(2), point).returncode == -9
    store.gc()
    assert store.list_goldens(include_retired=True) == []
    assert build_ids(store) == []
