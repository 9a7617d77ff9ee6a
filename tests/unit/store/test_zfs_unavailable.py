"""Without ZFS on the host, the zfs store says so at once, naming what to install.

These run on any host: the missing /dev/zfs is a path in a temporary directory, and the
missing bindings are the venv's real state (skipped where python3-pyzfs is importable).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from imagefactory.store.lzc import ZfsUnavailable, load_libzfs_core
from imagefactory.store.select import open_store


def test_a_missing_dev_zfs_names_the_module_and_the_packages(tmp_path: Path) -> None:
    missing = tmp_path / "zfs"
    with pytest.raises(ZfsUnavailable) as info:
        load_libzfs_core(missing)
    assert str(missing) in str(info.value) and "kernel module" in str(info.value)
    hint = info.value.hint or ""
    assert "modprobe zfs" in hint
    assert "zfs-dkms" in hint and "zfsutils-linux" in hint
    assert "file:" in hint  # and the way out: the files store


@pytest.mark.skipif(
    importlib.util.find_spec("libzfs_core") is not None, reason="python3-pyzfs is importable"
)
def test_missing_bindings_name_python3_pyzfs(tmp_path: Path) -> None:
    present = tmp_path / "zfs"
    present.touch()
    with pytest.raises(ZfsUnavailable, match="Python bindings") as info:
        load_libzfs_core(present)
    assert "python3-pyzfs" in (info.value.hint or "")


@pytest.mark.skipif(Path("/dev/zfs").exists(), reason="this host has ZFS")
def test_opening_a_zfs_store_on_a_host_without_zfs_fails_before_any_work() -> None:
    with pytest.raises(ZfsUnavailable, match="/dev/zfs") as info:
        open_store("zfs:rpool/vms")
    assert info.value.exit_status == 3
    assert "zfs-dkms" in (info.value.hint or "")
