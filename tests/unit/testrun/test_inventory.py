"""The suite inventory: written in the guest from a real suite's shape, kept and read back
on the host by digest, and never trusted further than its bytes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.paths import hooks_dir
from imagefactory.testrun.inventory import (
    InventoryError,
    digest_of,
    keep_inventory,
    load_inventory,
    parse_inventory,
    path_for,
)
from tests.fixtures.capped import run_capped
from tests.unit.testrun.fake_suite import RealShape, make_fake_suite, make_real_shape

WRITER = hooks_dir() / "ztest" / "inventory" / "suite_inventory.py"


def write_inventory(shape: RealShape, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WRITER), "--suite-dir", str(shape.suite),
         "--runfile-dir", str(shape.runfiles), "--suite-version", "2.3.9-0+deb13u1",
         "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[RealShape, bytes]:
    root = tmp_path_factory.mktemp("suite")
    shape = make_real_shape(root)
    proc = write_inventory(shape, root / "inventory.json")
    assert proc.returncode == 0, proc.stderr
    return shape, (root / "inventory.json").read_bytes()


def test_the_writer_records_every_test_of_a_real_suite_with_its_runfiles_and_tags(
    real: tuple[RealShape, bytes],
) -> None:
    _, data = real
    document = json.loads(data)
    tests = document["tests"]

    assert document["format"] == 1 and document["suite_version"] == "2.3.9-0+deb13u1"
    assert {"common.run", "linux.run", "sanity.run", "quick.run", "linux-fault.run"} <= set(
        document["runfiles"]
    )
    assert document["unreadable"] == {}
    zpool_create = tests["cli_root/zpool_create/zpool_create_001_pos"]
    assert zpool_create["on_disk"] is True
    assert set(zpool_create["listed"]) == {"common.run", "sanity.run", "quick.run"}
    assert zpool_create["listed"]["common.run"] == {
        "section": "tests/functional/cli_root/zpool_create",
        "tags": ["functional", "cli_root", "zpool_create"],
    }
    # linux.run's sections carry the :Linux suffix; the test keeps its plain name.
    assert tests["atime/root_relatime_on"]["listed"]["linux.run"]["section"] == (
        "tests/functional/atime:Linux"
    )
    # Shipped but in no runfile: recorded, listed nowhere (zfs-tests.sh -t can run it).
    unlisted = sorted(n for n, t in tests.items() if t["on_disk"] and not t["listed"])
    assert unlisted == [
        "cli_root/zpool_events/zpool_events_scrub_txg_continue_from_last",
        "cli_root/zpool_scrub/zpool_scrub_txg_continue_from_last",
    ]
    # Setup and cleanup scripts belong to sections; they are not tests.
    assert not [n for n in tests if n.rsplit("/", 1)[-1] in ("setup", "cleanup")]
    # longevity.run's absolute /opt/zfs-tests path lies outside the suite: left out.
    assert not [n for n in tests if n.startswith("/")]
    on_disk = sum(1 for t in tests.values() if t["on_disk"])
    assert 1400 < on_disk < 1700


def test_the_same_suite_gives_the_same_bytes(real: tuple[RealShape, bytes], tmp_path: Path) -> None:
    shape, data = real
    proc = write_inventory(shape, tmp_path / "again.json")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again.json").read_bytes() == data


def test_an_unreadable_runfile_is_recorded_and_the_rest_still_counts(tmp_path: Path) -> None:
    fake = make_fake_suite(tmp_path / "suite")
    (fake.runfiles / "broken.run").write_text("[tests/functional/atime]\ntests = ['a'\n")

    proc = write_inventory(RealShape(fake.suite, fake.runfiles, "2.3.9"), tmp_path / "inv.json")

    assert proc.returncode == 0, proc.stderr
    assert "unreadable: broken.run" in proc.stdout
    document = json.loads((tmp_path / "inv.json").read_text())
    assert "broken.run" in document["unreadable"]
    assert "common.run" in document["runfiles"]


def test_a_kept_inventory_reads_back_by_its_digest(
    real: tuple[RealShape, bytes], tmp_path: Path
) -> None:
    _, data = real

    digest = keep_inventory(data, tmp_path)

    assert digest == digest_of(data)
    path = path_for(digest, tmp_path)
    assert path == tmp_path / "inventories" / f"sha256-{digest.removeprefix('sha256:')}.json"
    assert path.read_bytes() == data
    assert keep_inventory(data, tmp_path) == digest  # kept once
    inventory = load_inventory(digest, tmp_path)
    assert inventory.digest == digest
    assert inventory.suite_version == "2.3.9-0+deb13u1"
    assert inventory.tests["cli_root/zpool_create/zpool_create_001_pos"]["common.run"].tags == (
        "functional",
        "cli_root",
        "zpool_create",
    )
    assert inventory.by_base["zfs_001_neg"] == (
        "cli_root/zfs/zfs_001_neg",
        "cli_user/misc/zfs_001_neg",
    )


def test_an_altered_or_missing_inventory_is_an_error_not_a_wrong_answer(
    real: tuple[RealShape, bytes], tmp_path: Path
) -> None:
    _, data = real
    digest = keep_inventory(data, tmp_path)
    path = path_for(digest, tmp_path)
    path.write_bytes(data.replace(b"zpool_create_001_pos", b"zpool_create_009_pos"))

    with pytest.raises(InventoryError, match="does not match its digest"):
        load_inventory(digest, tmp_path)
    path.unlink()
    with pytest.raises(InventoryError, match="is missing"):
        load_inventory(digest, tmp_path)


@pytest.mark.parametrize(
    "digest",
    ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:" + "0" * 32, "sha256:" + "0" * 63,
     "sha256:" + "0" * 64 + "/x", ""],
)  # fmt: skip
def test_a_digest_is_checked_before_it_becomes_a_path(digest: str, tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="not an inventory digest"):
        path_for(digest, tmp_path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not one"),
        (b'{"format": 2, "tests": {}}', "format"),
        (b'{"format": 1, "tests": {"a/b": {"on_disk": "maybe"}}}', "tests.a/b.on_disk"),
        (b"[" * 100000 + b"]" * 100000, "not JSON"),
    ],
)
def test_what_is_not_an_inventory_says_so_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(InventoryError, match=message) as caught:
        parse_inventory(data)
    assert "\n" not in str(caught.value)


def test_names_the_host_could_not_select_are_left_out() -> None:
    document = {
        "format": 1,
        "tests": {
            "a/ok_001_pos": {"on_disk": True},
            "a/../b": {"on_disk": True},
            "/opt/x": {"on_disk": True},
            "a/gone_001_pos": {"on_disk": False},
        },
    }

    inventory = parse_inventory(json.dumps(document).encode())

    assert list(inventory.tests) == ["a/ok_001_pos"]
    assert inventory.not_shipped == {"a/gone_001_pos"}


def _parse_quietly(data: bytes) -> None:
    with contextlib.suppress(InventoryError):
        parse_inventory(data)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise_anything_but_an_inventory_error(data: bytes) -> None:
    run_capped(_parse_quietly, data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {"format": st.sampled_from([1, 1, "1", None])},
        optional={
            "tests": st.dictionaries(
                st.text(max_size=30),
                st.fixed_dictionaries({"on_disk": st.booleans()}, optional={"listed": _json})
                | _json,
                max_size=5,
            ),
            "runfiles": _json,
            "suite_version": _json,
        },
    )
)
def test_hostile_json_never_raises_anything_but_an_inventory_error(document: object) -> None:
    run_capped(_parse_quietly, json.dumps(document).encode())
