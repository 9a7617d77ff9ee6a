"""State directories are private (0700), per-build keys 0600, and identifiers read from
disk are validated before they become paths."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from imagefactory.builder.lock import golden_lock
from imagefactory.builder.statedir import (
    build_dir,
    builds_dir,
    crashes_dir,
    locks_dir,
    markers_dir,
    state_root,
)
from imagefactory.errors import UsageError
from imagefactory.store.base import Provenance
from imagefactory.vm.seed import generate_ssh_key

LEAF = "klab-golden-debian"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "state"
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(root))
    return root


def test_every_state_directory_is_private(state: Path) -> None:
    made = [
        state_root(),
        locks_dir(),
        markers_dir(LEAF),
        crashes_dir(),
        build_dir(LEAF, "20261202T000000-abc123", create=True),
    ]
    for path in [*made, builds_dir(LEAF), state / "builds", state / "markers"]:
        assert mode(path) == 0o700, path


def test_an_existing_state_directory_is_tightened(state: Path) -> None:
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    assert mode(state_root()) == 0o700


def test_the_build_key_is_readable_by_its_owner_only(state: Path) -> None:
    directory = build_dir(LEAF, "b1", create=True)
    key = generate_ssh_key(directory / "ssh", "imagefactory-build-test-0000")
    assert mode(key.private_key) == 0o600
    assert "PRIVATE KEY" in key.private_key.read_text()


@pytest.mark.parametrize(
    "bad", ["../../../../tmp/x/fake", "..", "a/b", "", ".hidden", "x" * 101, "a\nb", "b@1"]
)
def test_identifiers_from_disk_never_become_paths_outside(state: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        build_dir(LEAF, bad)
    with pytest.raises(UsageError):
        builds_dir(bad or ".")
    with pytest.raises(UsageError):
        markers_dir(bad or ".")
    with pytest.raises(UsageError), golden_lock(bad or ".", directory=state):
        pass
    if bad:
        with pytest.raises(UsageError):
            Provenance(distro="d", lineage="l", build_id=bad)
    assert not (state.parent / "tmp").exists()
