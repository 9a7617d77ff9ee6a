"""Done when (issue 14): editing a hook, a payload file, a cloud-init fragment or the runner in
a copy of the repository makes `imagefactory plan` say a rebuild is due and name the file.

No VM: the golden is a small image published through the files store's own API, with the
provenance a build of the copy's inputs records; the source image sits in a real image
cache under the spec's URL, as a fetch leaves it.  `plan` runs as a real process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagefactory.builder.identity import golden_identity, short_digest
from imagefactory.fetch.cache import ImageCache
from imagefactory.paths import project_root
from imagefactory.spec.digest import Digest
from imagefactory.spec.loader import load_distro
from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.vm.fromspec import hook_plan
from tests.fixtures.stores import ImageMaker

BUILD_ID = "20261202T210000-c0ffee"
PLAN = [sys.executable, "-m", "imagefactory", "plan", "debian13", "--lineage", "ztest"]


@dataclass
class Copy:
    home: Path
    store: Path
    cache: Path

    def plan(self, *args: str) -> str:
        env = {
            **os.environ,
            "IMAGEFACTORY_HOME": str(self.home),
            "IMAGEFACTORY_CACHE": str(self.cache),
        }
        for name in ("KLAB_ZFS_BRANCH", "KLAB_ZFS_SOURCE", "KLAB_FORCE_REBUILD"):
            env.pop(name, None)
        proc = subprocess.run(
            [*PLAN, "--store", f"file:{self.store}", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def edit(self, relative: str) -> None:
        with (self.home / relative).open("a") as f:
            f.write("\n# an edit\n")


def publish_golden(copy: Copy, image: Path, *, with_identity: bool) -> None:
    """What a build of the copy's current inputs from `image` publishes."""
    data = image.read_bytes()
    digest = Digest("sha512", hashlib.sha512(data).hexdigest())
    resolved = load_distro("debian13", lineage="ztest", env={})
    source = resolved.spec.source.cloud_image
    assert source is not None
    ImageCache(copy.cache).insert(image, digest, keys=[str(source.url)])
    plan = hook_plan(resolved)
    identity = golden_identity(resolved, plan, source_digest=str(digest), bootstrapped=False)
    store = FileStore(copy.store)
    volume = store.create_build_volume(resolved.golden_leaf, BUILD_ID, 64 * 1024 * 1024)
    volume = store.write_image(volume, ImageCache(copy.cache).get(digest) or image)
    store.publish(
        volume,
        Provenance(
            distro="debian13",
            lineage="ztest",
            build_id=BUILD_ID,
            source_digest=str(digest),
            spec_digest=resolved.spec_digest,
            hooks_digest=identity.values["hooks"],
            tool_version=identity.values["version"],
            identity=identity.record() if with_identity else None,
        ),
    )


@pytest.fixture
def copy(tmp_path: Path, make_image: ImageMaker, monkeypatch: pytest.MonkeyPatch) -> Iterator[Copy]:
    home = tmp_path / "repo"
    for name in ("distros", "hooks", "cloud-init", "keys"):
        shutil.copytree(project_root() / name, home / name)
    monkeypatch.setenv("IMAGEFACTORY_HOME", str(home))
    yield Copy(home, tmp_path / "store", tmp_path / "cache")


@pytest.mark.parametrize(
    "edited",
    [
        "hooks/ztest/10-zfs.sh",
        "hooks/ztest/_lib.sh",  # a library every hook inlines
        "hooks/payload/runfiles/quick.run",
        "cloud-init/base.yaml",
        "hooks/runner/run-hooks.sh",
    ],
)
def test_an_edited_input_makes_plan_name_it_and_call_a_rebuild_due(
    copy: Copy, make_image: ImageMaker, edited: str
) -> None:
    publish_golden(copy, make_image(1), with_identity=True)
    before = copy.plan()
    assert "rebuild:  not due: the golden is up to date" in before
    # An unpinned cloud image is always checked against the vendor: fetch runs, and the
    # forecast goes by the image last fetched.
    assert "checks the vendor's checksum; last fetched sha512:" in before
    copy.edit(edited)
    after = copy.plan()
    assert "rebuild:  due" in after
    assert f"  - {edited} changed since build {BUILD_ID}" in after.splitlines()


def test_the_stages_are_the_builds_own_list(copy: Copy, make_image: ImageMaker) -> None:
    publish_golden(copy, make_image(1), with_identity=True)
    lines = copy.plan().splitlines()
    start = lines.index("stages:")
    names = [line.split()[1] for line in lines[start + 1 :] if line[:4].strip().endswith(".")]
    assert names == ["fetch", "volume", "seed", "boot", "seal-check", "publish"]
    # Up to date: every stage after fetch is skipped, and plan says why.
    assert all(" skipped " in line for line in lines if line.startswith("  6. publish"))


def test_plan_json_carries_the_stages_identity_and_reasons(
    copy: Copy, make_image: ImageMaker
) -> None:
    publish_golden(copy, make_image(1), with_identity=True)
    copy.edit("hooks/runner/imagefactory-hooks.service")
    document = json.loads(copy.plan("--json"))
    assert [s["name"] for s in document["stages"]] == [
        "fetch",
        "volume",
        "seed",
        "boot",
        "seal-check",
        "publish",
    ]
    assert {s["status"] for s in document["stages"][1:]} == {"runs"}
    assert document["identity"].startswith("v1 id=sha256:")
    assert document["rebuild"]["due"] is True
    assert document["rebuild"]["reasons"] == [
        f"hooks/runner/imagefactory-hooks.service changed since build {BUILD_ID}"
    ]


def test_a_golden_from_before_identities_is_due_for_a_rebuild(
    copy: Copy, make_image: ImageMaker
) -> None:
    publish_golden(copy, make_image(1), with_identity=False)
    out = copy.plan()
    assert "rebuild:  due" in out
    assert f"build {BUILD_ID} was made before identities were recorded" in out


def test_a_changed_source_image_is_named(copy: Copy, make_image: ImageMaker) -> None:
    publish_golden(copy, make_image(1), with_identity=True)
    newer = make_image(2)
    digest = Digest("sha512", hashlib.sha512(newer.read_bytes()).hexdigest())
    resolved = load_distro("debian13", lineage="ztest", env={})
    assert resolved.spec.source.cloud_image is not None
    ImageCache(copy.cache).insert(newer, digest, keys=[str(resolved.spec.source.cloud_image.url)])
    out = copy.plan()
    assert f"the source image is {short_digest(str(digest))} since build {BUILD_ID}" in out


def test_an_unreachable_mirror_leaves_the_bootstrap_fetch_unknown_not_guessed(
    copy: Copy, make_image: ImageMaker
) -> None:
    publish_golden(copy, make_image(1), with_identity=True)
    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        out = copy.plan("--source", "bootstrap", "--package-mirror", f"http://127.0.0.1:{port}/d")
    fetch = next(line for line in out.splitlines() if line.startswith("  1. fetch"))
    assert fetch.split()[2] == "unknown"
    assert "note:     fetch: " in out
    # The recipe of a bootstrapped image is an input a cloud-image golden did not have.
    recipe = "imagefactory/fetch/bootstrap_hooks/customize.sh"
    assert f"{recipe} is a new input since build {BUILD_ID}" in out
