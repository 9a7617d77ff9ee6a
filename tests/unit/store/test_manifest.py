"""Manifests are written atomically and read only from regular files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from imagefactory.store.manifest import read_manifest, write_manifest


def test_write_is_complete_with_the_mode_and_no_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_manifest(path, {"role": "golden"}, mode=0o444)
    write_manifest(path, {"role": "retired"}, mode=0o444)  # replaces a read-only file
    assert json.loads(path.read_text()) == {"format": 1, "role": "retired"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert sorted(p.name for p in tmp_path.iterdir()) == [".imagefactory-tmp", "x.json"]
    assert list((tmp_path / ".imagefactory-tmp").iterdir()) == []


def test_unusable_manifests_read_as_none(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    write_manifest(good, {"role": "clone"})
    assert read_manifest(good) == {"format": 1, "role": "clone"}
    (tmp_path / "link.json").symlink_to(good)
    (tmp_path / "list.json").write_text("[1]", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    (tmp_path / "dir.json").mkdir()
    for name in ["link.json", "list.json", "bad.json", "dir.json", "missing.json"]:
        assert read_manifest(tmp_path / name) is None, name
