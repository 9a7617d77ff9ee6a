"""The build keeps the suite inventory the guest wrote, and refuses a broken one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.builder.seal_check import SealCheckFailed, keep_guest_inventory
from imagefactory.testrun.inventory import digest_of, load_inventory, path_for

INVENTORY = {
    "format": 1,
    "suite_version": "2.3.9-1",
    "runfiles": ["common.run"],
    "tests": {
        "atime/atime_001_pos": {
            "on_disk": True,
            "listed": {"common.run": {"section": "tests/functional/atime", "tags": ["atime"]}},
        }
    },
}


def guest_root(tmp_path: Path, data: bytes | None) -> Path:
    root = tmp_path / "root"
    (root / "etc" / "imagefactory").mkdir(parents=True)
    if data is not None:
        (root / "etc" / "imagefactory" / "inventory.json").write_bytes(data)
    return root


def test_the_guests_inventory_is_kept_under_its_digest(tmp_path: Path) -> None:
    data = json.dumps(INVENTORY).encode()
    state = tmp_path / "state"

    digest = keep_guest_inventory(guest_root(tmp_path, data), state=state)

    assert digest == digest_of(data)
    assert path_for(digest, state).read_bytes() == data
    assert list(load_inventory(digest, state).tests) == ["atime/atime_001_pos"]


def test_a_golden_without_an_inventory_has_no_digest(tmp_path: Path) -> None:
    assert keep_guest_inventory(guest_root(tmp_path, None), state=tmp_path / "s") is None
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("data", [b"{", json.dumps({"format": 9, "tests": {}}).encode()])
def test_a_broken_inventory_fails_the_build_with_one_line(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(SealCheckFailed, match=r"^/etc/imagefactory/inventory.json: ") as caught:
        keep_guest_inventory(guest_root(tmp_path, data), state=tmp_path / "state")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "state" / "inventories").exists()
