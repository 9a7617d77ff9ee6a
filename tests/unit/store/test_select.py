"""Store selection: --store, then $IMAGEFACTORY_STORE, then the default; zfs without ZFS
fails with what to install."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.store.files import FileStore
from imagefactory.store.lzc import ZfsUnavailable, load_libzfs_core
from imagefactory.store.select import (
    default_files_dir,
    default_store_spec,
    open_store,
    parse_store_spec,
    resolve_store_spec,
)

NO_ZFS = not Path("/dev/zfs").exists()


def test_specs_parse() -> None:
    assert parse_store_spec("zfs:rpool/vms") == ("zfs", "rpool/vms")
    assert parse_store_spec("file:/srv/goldens") == ("file", "/srv/goldens")
    assert parse_store_spec("file:rel/dir") == ("file", "rel/dir")
    for bad in ["zfs", "zfs:", "nfs:/x", "rpool/vms", "zfs:/rpool", "zfs:rpool/vms@golden"]:
        with pytest.raises(UsageError):
            parse_store_spec(bad)


def test_argument_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "file:/from/env")
    assert resolve_store_spec("file:/from/arg") == "file:/from/arg"
    assert resolve_store_spec(None) == "file:/from/env"
    monkeypatch.delenv("IMAGEFACTORY_STORE")
    assert resolve_store_spec(None) == default_store_spec()


@pytest.mark.skipif(not NO_ZFS, reason="this host has ZFS")
def test_default_is_the_files_store_without_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/xdg")
    assert default_store_spec() == f"file:{default_files_dir()}"
    if os.geteuid() == 0:
        assert default_files_dir() == Path("/var/lib/imagefactory/goldens")
    else:
        assert default_files_dir() == Path("/xdg/imagefactory/goldens")


def test_open_file_store_creates_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", f"file:{tmp_path}/goldens")
    store = open_store()
    assert isinstance(store, FileStore) and store.root == tmp_path / "goldens"


@pytest.mark.skipif(not NO_ZFS, reason="this host has ZFS")
def test_zfs_store_without_zfs_says_what_to_install() -> None:
    with pytest.raises(ZfsUnavailable, match="/dev/zfs is missing") as info:
        open_store("zfs:testpool/vms")
    assert info.value.exit_status == 3
    assert info.value.hint is not None
    assert "modprobe zfs" in info.value.hint and "zfsutils-linux" in info.value.hint


def test_missing_dev_zfs_is_reported_before_anything_else(tmp_path: Path) -> None:
    with pytest.raises(ZfsUnavailable, match="is missing"):
        load_libzfs_core(tmp_path / "no-such-device")
