"""The one atomic-write helper: old or new content, never part; nothing left behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.atomic import temp_sibling, write_atomic

REPO = Path(__file__).resolve().parents[2]


def test_replaces_the_content_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_mode_is_set_before_the_file_appears_and_read_only_files_are_replaced(
    tmp_path: Path,
) -> None:
    path = tmp_path / "manifest.json"
    write_atomic(path, b"1", mode=0o444)
    write_atomic(path, b"2", mode=0o444)
    assert path.read_bytes() == b"2"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_without_a_mode_the_umask_applies_like_a_plain_write(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a", b"x")
        (tmp_path / "b").write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o640


def test_a_failed_write_keeps_the_old_content_and_removes_its_temporary_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "record"
    write_atomic(path, b"old")
    target_dir = tmp_path / "elsewhere"
    target_dir.mkdir()
    # A temporary file on the way that cannot be created (its directory is gone) fails
    # before anything is renamed.
    with pytest.raises(FileNotFoundError):
        write_atomic(path, b"new", temp=tmp_path / "missing" / "t.tmp")
    assert path.read_bytes() == b"old"
    # A rename that fails (the target is a directory) removes the written temporary file.
    with pytest.raises(IsADirectoryError):
        write_atomic(target_dir, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "record"]


def test_a_symlink_in_the_temporary_files_place_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    temp = tmp_path / ".t.tmp"
    temp.symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_atomic(tmp_path / "t", b"x", temp=temp)
    assert victim.read_bytes() == b"keep"


def test_temporary_names_are_hidden_siblings_and_unique(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    names = {temp_sibling(path) for _ in range(50)}
    assert len(names) == 50
    assert all(n.parent == tmp_path and n.name.startswith(".x.json.") for n in names)


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
import imagefactory.atomic as atomic
real_replace = Path.replace
def die(self, target):  # killed after the data is written, before the rename
    os.kill(os.getpid(), signal.SIGKILL)
Path.replace = die
atomic.write_atomic(Path(sys.argv[1]), b"new" * 1000)
"""


def test_a_writer_killed_before_the_rename_leaves_the_old_content(tmp_path: Path) -> None:
    path = tmp_path / "record"
    write_atomic(path, b"old")
    # Patched in the child only: SIGKILL at the one moment between write and rename.
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(path)], cwd=REPO, capture_output=True
    )
    assert proc.returncode == -9, proc.stderr
    assert path.read_bytes() == b"old"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "record"]
    assert len(leftovers) == 1 and leftovers[0].read_bytes() == b"new" * 1000
