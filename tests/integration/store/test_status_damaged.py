"""`klab status` survives bad goldens, and a copied files store is "moved", then verified.

Real parts: files stores with goldens published from real qcow2 images, manifests damaged
on disk the way a hostile or broken tool would, stores copied with `cp`, and the CLI run
as a subprocess (status, verify) exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.store.files_integrity import GoldenCorrupt
from tests.fixtures.stores import MIB, make_raw_image

REPO = Path(__file__).resolve().parents[3]
GOOD, BAD = "klab-golden-debian", "klab-golden-ubuntu"


def cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "IMAGEFACTORY_STATE": str(state),
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )


def publish(store: FileStore, leaf: str, image: Path, build_id: str) -> None:
    volume = store.create_build_volume(leaf, build_id, 8 * MIB)
    volume = store.write_image(volume, image, source_format="raw")
    store.publish(volume, Provenance(distro=leaf, lineage="golden", build_id=build_id))


@pytest.fixture
def two_goldens(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path / "store")
    for n, leaf in enumerate((GOOD, BAD)):
        publish(store, leaf, make_raw_image(tmp_path / f"{leaf}.raw", n, size=8 * MIB), f"b{n}")
    return store


def line_of(out: str, leaf: str) -> str:
    """The status row of a golden: `    <distro>: ...` under its lineage's count line."""
    prefix, short = leaf.rsplit("-", 1)
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(f"  {prefix}-* : "))
    return next(line for line in lines[start + 1 :] if line.startswith(f"    {short}: "))


def json_rows(out: str) -> dict[str, dict[str, Any]]:
    return {r["golden"]: r for lineage in json.loads(out)["lineages"] for r in lineage["goldens"]}


def rewrite(store: FileStore, leaf: str, change: object) -> None:
    path = store.root / f"{leaf}.json"
    data = json.loads(path.read_text())
    path.chmod(0o644)
    if callable(change):
        change(data)
        path.write_text(json.dumps(data))
    else:
        path.write_bytes(change if isinstance(change, bytes) else str(change).encode())


# One damaged golden per kind of damage, each on its own leaf of the same store.
DAMAGE = {
    "klab-golden-ubuntu": (
        lambda m: m["provenance"].update(zfs_version=2),
        "zfs_version 2 is not a string",
    ),
    "klab-golden-centos": (lambda m: m["provenance"].update(zfs_version="2.3\t9"), "not storable"),
    "klab-golden-fedora": (lambda m: m["provenance"].update(distro="\x1b[31mred"), "not storable"),
    "klab-golden-rocky": (lambda m: m.update(provenance="x"), '"x" is not an object'),
    "klab-ztest-debian": (lambda m: m.update(inode="12"), 'inode "12" is not'),
    "klab-ztest-ubuntu": (b'{"role": ', "not valid JSON"),
    "klab-ztest-centos": (b"[" * 100_000, "not valid JSON"),
    "klab-ztest-fedora": (b"[1, 2]", "holds a JSON list, not an object"),
    "klab-ztest-rocky": (
        lambda m: m["provenance"].update(build_id="../../../../tmp/x/fake"),
        "invalid provenance build_id",
    ),
}


def test_bad_manifests_are_shown_damaged_with_the_reason_and_the_others_still_listed(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    image = make_raw_image(tmp_path / "i.raw", 1, size=8 * MIB)
    for n, leaf in enumerate([GOOD, *DAMAGE]):
        publish(store, leaf, image, f"b{n}")
    for leaf, (change, _) in DAMAGE.items():
        rewrite(store, leaf, change)
    proc = cli("status", "--store", store.spec, state=tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ready ✅" in line_of(proc.stdout, GOOD)
    proc = cli("status", "--json", "--store", store.spec, state=tmp_path / "state")
    rows = json_rows(proc.stdout)
    assert rows[GOOD]["present"] and "damaged" not in rows[GOOD]
    for leaf, (_, reason) in DAMAGE.items():
        assert not rows[leaf]["present"] and reason in rows[leaf]["damaged"], rows[leaf]


def test_a_forged_build_id_never_reads_facts_outside_the_state_directory(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "store")
    leaf = "klab-ztest-debian"
    publish(store, leaf, make_raw_image(tmp_path / "i.raw", 1, size=8 * MIB), "b1")
    state = tmp_path / "state"
    # Forged facts where the traversal would lead from the build directory.
    target = tmp_path / "x" / "fake"
    target.mkdir(parents=True)
    facts = {"guest_facts": {"ksh": True, "zfs_tests_sh": True, "vdevs": True}}
    (target / "manifest.json").write_text(json.dumps(facts))
    depth = len((state / "builds" / leaf).relative_to("/").parts)
    forged = "../" * depth + str(target.relative_to("/"))
    rewrite(store, leaf, lambda m: m["provenance"].update(build_id=forged, zfs_version="2.3.9"))
    proc = cli("status", "--store", store.spec, state=state)
    assert proc.returncode == 0, proc.stderr
    line = line_of(proc.stdout, leaf)
    assert "damaged" in line and "✅" not in line, line


@pytest.mark.parametrize("how", [["cp", "-a"], ["cp", "-r"]])
def test_a_copied_store_is_moved_until_verified_then_present(
    two_goldens: FileStore, tmp_path: Path, how: list[str]
) -> None:
    copy = tmp_path / "copy"
    subprocess.run([*how, str(two_goldens.root), str(copy)], check=True)
    state = tmp_path / "state"
    proc = cli("status", "--store", f"file:{copy}", state=state)
    assert proc.returncode == 0, proc.stderr
    for leaf in (GOOD, BAD):
        assert "moved, not verified" in line_of(proc.stdout, leaf)

    proc = cli("verify", "--store", f"file:{copy}", state=state)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("digest matches its manifest; pinned to this copy") == 2

    proc = cli("status", "--store", f"file:{copy}", state=state)
    for leaf in (GOOD, BAD):
        line = line_of(proc.stdout, leaf)
        assert "ready ✅" in line and "moved" not in line
    assert cli("verify", "--store", f"file:{copy}", state=state).stdout.count("ok:") == 2


def test_a_corrupt_copy_is_never_trusted(two_goldens: FileStore, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(two_goldens.root), str(copy)], check=True)
    image = copy / f"{BAD}.qcow2"
    image.chmod(0o644)
    with image.open("r+b") as f:  # one flipped byte in the middle of the data
        f.seek(image.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    image.chmod(0o444)
    state = tmp_path / "state"

    proc = cli("verify", "--store", f"file:{copy}", state=state)
    assert proc.returncode == 1, proc.stderr
    assert f"{BAD}: FAILED" in proc.stdout and f"{GOOD}: moved" in proc.stdout
    assert "moved, not verified" in line_of(
        cli("status", "--store", f"file:{copy}", state=state).stdout, BAD
    )
    # klab test clones the golden: the first clone checks the digest, and refuses.
    copied = FileStore(copy)
    with pytest.raises(GoldenCorrupt):
        copied.clone(BAD, "run1")
    clone = copied.clone(GOOD, "run1")
    pinned = copied.get_golden(GOOD)
    assert pinned is not None and not pinned.moved
    copied.destroy_clone(clone)


def test_a_golden_in_place_is_rehashed_by_verify(two_goldens: FileStore, tmp_path: Path) -> None:
    proc = cli("verify", GOOD, "--store", two_goldens.spec, state=tmp_path / "state")
    assert proc.returncode == 0 and "ok: the image's digest matches" in proc.stdout
    proc = cli("verify", "klab-golden-nope", "--store", two_goldens.spec, state=tmp_path)
    assert proc.returncode == 2 and "no golden klab-golden-nope" in proc.stdout
