"""Property-based tests of the manifest reader: a files store's manifests are outside text
(anyone with write access to the directory, a broken copy, a bad disk), so random and
hostile content never escapes as a traceback.  `load_manifest` gives a checked manifest,
None or a `ManifestError`; the store built on it lists, describes and shows as damaged
whatever is there, without raising.

Each case runs in a forked child under a generous time and memory cap
(tests/fixtures/capped.py): a hang or a bomb fails the case; nothing here measures speed.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.store.manifest import ManifestError, load_manifest, write_manifest
from tests.fixtures.capped import run_capped

PROPERTY = settings(
    max_examples=80,
    deadline=None,  # the cap in the child catches hangs; no timing assertions here
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LEAF = "klab-golden-debian"

hostile_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("\t\n\x1b\x00\x7f"),
    max_size=80,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | hostile_text
    | st.sampled_from(["../../../../tmp/x/fake", "sha256:" + "0" * 64, "golden", LEAF]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "role", "leaf", "build_id", "owner", "inode", "virtual_size", "image_digest",
    "created_at", "published_at", "provenance", "format",
]  # fmt: skip
PROVENANCE_FIELDS = list(Provenance.field_names())


def golden_manifest(inode: int) -> dict[str, Any]:
    return {
        "format": 1,
        "role": "golden",
        "leaf": LEAF,
        "build_id": "b1",
        "owner": "",
        "inode": inode,
        "image_digest": "sha256:" + "0" * 64,
        "virtual_size": 1 << 20,
        "created_at": "2026-01-01T00:00:00Z",
        "published_at": "2026-01-01T00:00:00Z",
        "provenance": {"distro": "debian13", "lineage": "golden", "build_id": "b1"},
    }


def read_everywhere(payload: bytes) -> None:
    """Write `payload` as a golden's manifest next to an image; read it every way."""
    with tempfile.TemporaryDirectory(prefix="manifest-property-") as tmp:
        root = Path(tmp)
        image = root / f"{LEAF}.qcow2"
        image.write_bytes(b"\0" * 512)
        path = root / f"{LEAF}.json"
        path.write_bytes(payload.replace(b"@INODE@", str(image.stat().st_ino).encode()))
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            assert str(exc) and "\n" not in str(exc)
            manifest = None
        store = FileStore(root)
        goldens = store.list_goldens(include_retired=True)
        damaged = store.damaged()
        golden = store.get_golden(LEAF)
        # Each leaf is exactly one of: listed, damaged (with a reason), or absent.
        assert not (goldens and LEAF in damaged)
        assert (golden is not None) == bool(goldens)
        if golden is not None:
            assert manifest is not None
            assert ".." not in golden.provenance.build_id
        store.gc(dry_run=True)


def check(payload: bytes) -> None:
    run_capped(read_everywhere, payload)


@PROPERTY
@given(st.binary(max_size=400))
@example(b"[" * 100_000)
@example(b'{"role": "golden", "inode": 1e999999}')
@example(b'{"role": "golden", "leaf": "' + LEAF.encode() + b'", "inode": ' + b"9" * 5000 + b"}")
@example(b"\xff\xfe{}")
def test_random_bytes(payload: bytes) -> None:
    check(payload)


@PROPERTY
@given(json_values)
def test_random_json(value: object) -> None:
    check(json.dumps(value).encode())


@PROPERTY
@given(st.sampled_from(FIELDS), json_values)
@example("provenance", "x")
@example("inode", True)
@example("inode", "@INODE@")
@example("virtual_size", -1)
def test_a_valid_manifest_with_one_field_replaced(name: str, value: object) -> None:
    manifest = golden_manifest(0)
    manifest[name] = value
    text = json.dumps(manifest).replace('"inode": 0', '"inode": @INODE@')
    check(text.encode())


@PROPERTY
@given(st.sampled_from(PROVENANCE_FIELDS), json_values)
@example("zfs_version", 2)
@example("zfs_version", "2.3\t9")
@example("distro", "\x1b[31mred")
@example("build_id", "../../../../tmp/x/fake")
def test_a_valid_manifest_with_one_provenance_value_replaced(name: str, value: object) -> None:
    manifest = golden_manifest(0)
    manifest["provenance"][name] = value
    text = json.dumps(manifest).replace('"inode": 0', '"inode": @INODE@')
    check(text.encode())


def test_the_valid_manifest_is_read_as_a_golden(tmp_path: Path) -> None:
    """The control: the skeleton the hostile cases start from is a working golden."""
    image = tmp_path / f"{LEAF}.qcow2"
    image.write_bytes(b"\0" * 512)
    write_manifest(tmp_path / f"{LEAF}.json", golden_manifest(image.stat().st_ino))
    golden = FileStore(tmp_path).get_golden(LEAF)
    assert golden is not None and golden.provenance.build_id == "b1" and not golden.moved
