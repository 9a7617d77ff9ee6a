"""The guards: names are mapped to children directly under the root, or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.store.safety import (
    UnsafeOperation,
    check_dataset_root,
    check_plain_file,
    child_in_dataset,
    child_in_dir,
    require_role,
)

LEAF = "klab-golden-debian"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path.resolve()


@pytest.mark.parametrize(
    "name",
    [
        f"{LEAF}.clone-1",
        f"{LEAF}.clone-1.qcow2",
        f"{LEAF}.clone-1.json",
        f"{LEAF}.clone-1.origin.qcow2",
        f"./{LEAF}.clone-1.qcow2",
    ],
)
def test_names_of_the_store_map_to_their_child(root: Path, name: str) -> None:
    assert child_in_dir(root, name, {"clone"}).child == f"{LEAF}.clone-1"
    assert child_in_dir(root, root / name, {"clone"}).child == f"{LEAF}.clone-1"


def test_files_outside_the_root_are_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (root / "sub").mkdir()
    (root / "link").symlink_to(tmp_path / "other")
    for name in [
        f"../{LEAF}.clone-1.qcow2",
        f"{root}/../store/{LEAF}.clone-1.qcow2",
        str(tmp_path / "other" / f"{LEAF}.clone-1.qcow2"),
        f"sub/{LEAF}.clone-1.qcow2",
        f"link/{LEAF}.clone-1.qcow2",
        f"missing/{LEAF}.clone-1.qcow2",
        "/etc/passwd",
        "",
        "a\0b",
    ]:
        with pytest.raises(UnsafeOperation):
            child_in_dir(root, name, {"clone"})


def test_names_of_another_kind_or_scheme_are_refused(root: Path) -> None:
    for name in [f"{LEAF}.qcow2", f"{LEAF}.build-1.qcow2", "notes.txt", f"{LEAF}.clone-1.raw"]:
        with pytest.raises(UnsafeOperation):
            child_in_dir(root, name, {"clone"})


def test_symlinks_and_non_files_are_not_plain_files(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("x", encoding="utf-8")
    (root / "link").symlink_to(target)
    (root / "dir").mkdir()
    with pytest.raises(UnsafeOperation, match="symbolic link"):
        check_plain_file(root / "link")
    with pytest.raises(UnsafeOperation, match="not a regular file"):
        check_plain_file(root / "dir")
    assert check_plain_file(root / "missing", missing_ok=True) is False
    with pytest.raises(UnsafeOperation, match="does not exist"):
        check_plain_file(root / "missing")
    assert check_plain_file(target) is True


def test_datasets_map_to_their_child_only_directly_under_the_root() -> None:
    root = "rpool/vms"
    assert child_in_dataset(root, f"rpool/vms/{LEAF}.clone-1", {"clone"}).ident == "1"
    assert child_in_dataset(root, f"{LEAF}.clone-1", {"clone"}).leaf == LEAF
    for name in [
        f"rpool/{LEAF}.clone-1",
        f"rpool/vmsx/{LEAF}.clone-1",
        f"rpool/vms/a/{LEAF}.clone-1",
        f"rpool/vms/../{LEAF}.clone-1",
        f"rpool/vms/{LEAF}.clone-1@golden",
        f"rpool/vms/{LEAF}.clone-1#bm",
        f"rpool/vms/{LEAF}",
        "rpool/vms",
        "rpool",
        "",
    ]:
        with pytest.raises(UnsafeOperation):
            child_in_dataset(root, name, {"clone"})


@pytest.mark.parametrize("root", ["", "/rpool/vms", "rpool/vms@golden", "rpool//vms", "a/../b"])
def test_invalid_dataset_roots_are_usage_errors(root: str) -> None:
    with pytest.raises(UsageError):
        check_dataset_root(root)


def test_role_marker_must_be_present_and_expected() -> None:
    require_role("x", "clone", {"clone"})
    with pytest.raises(UnsafeOperation, match="no imagefactory:role marker"):
        require_role("x", None, {"clone"})
    with pytest.raises(UnsafeOperation, match="expected clone"):
        require_role("x", "golden", {"clone"})
