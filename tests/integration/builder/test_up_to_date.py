"""The build's own up-to-date check, run for real as `imagefactory golden` (no VM):

- a golden published with the identity of the current inputs is left alone, and the fetch
  of a pinned image already in the cache is skipped as `cached`;
- after a hook edit the same build goes on past fetch (it is killed at the `build.volume`
  crash point, before anything boots) and the old golden stays;
- a golden from before identities (no `identity` in its provenance) is rebuilt the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagefactory.builder.identity import golden_identity
from imagefactory.fetch.cache import ImageCache
from imagefactory.paths import project_root
from imagefactory.spec.digest import Digest
from imagefactory.spec.loader import load_distro
from imagefactory.store.base import Provenance
from imagefactory.store.files import FileStore
from imagefactory.vm.fromspec import hook_plan
from tests.fixtures.stores import ImageMaker

BUILD_ID = "20261202T220000-abc123"


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "repo"
        self.store = root / "store"
        self.cache = root / "cache"

    def golden(self, *extra_env: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "IMAGEFACTORY_HOME": str(self.repo),
            "IMAGEFACTORY_CACHE": str(self.cache),
            "IMAGEFACTORY_STATE": str(self.root / "state"),
            "IMAGEFACTORY_STORE": f"file:{self.store}",
            **dict(extra_env),
        }
        names = (
            "KLAB_ZFS_BRANCH",
            "KLAB_FORCE_REBUILD",
            "KLAB_GOLDEN_KIND",
            "IMAGEFACTORY_CRASH_AT",
        )
        for name in names:
            if name not in dict(extra_env):
                env.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "imagefactory", "--log-format", "json", "golden", "pinned"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )

    def build_id(self) -> str:
        golden = FileStore(self.store).get_golden("klab-golden-debian")
        assert golden is not None
        return golden.provenance.build_id


@pytest.fixture
def home(tmp_path: Path, make_image: ImageMaker, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A copy of the repository with a spec whose cloud image is pinned and cached, and its
    lean golden published with `with_identity` decided per test."""
    home = Home(tmp_path)
    for name in ("distros", "hooks", "cloud-init", "keys"):
        shutil.copytree(project_root() / name, home.repo / name)
    image = make_image(1, "qcow2")
    digest = Digest("sha256", hashlib.sha256(image.read_bytes()).hexdigest())
    doc = yaml.safe_load((home.repo / "distros" / "debian13.yaml").read_text())
    doc.update(name="pinned", aliases=[])
    doc["source"] = {
        "default": "cloud_image",
        "cloud_image": {"url": "https://example.invalid/pinned.qcow2", "digest": str(digest)},
    }
    (home.repo / "distros" / "pinned.yaml").write_text(yaml.safe_dump(doc))
    ImageCache(home.cache).insert(image, digest)
    monkeypatch.setenv("IMAGEFACTORY_HOME", str(home.repo))
    return home


def publish(home: Home, *, with_identity: bool) -> None:
    resolved = load_distro("pinned", lineage="lean", env={})
    source = resolved.spec.source.cloud_image
    assert source is not None and source.digest is not None
    identity = golden_identity(
        resolved, hook_plan(resolved), source_digest=str(source.digest), bootstrapped=False
    )
    store = FileStore(home.store)
    cached = ImageCache(home.cache).get(source.digest)
    assert cached is not None
    volume = store.create_build_volume(resolved.golden_leaf, BUILD_ID, 64 * 1024 * 1024)
    store.publish(
        store.write_image(volume, cached),
        Provenance(
            distro="pinned",
            lineage="lean",
            build_id=BUILD_ID,
            source_digest=str(source.digest),
            spec_digest=resolved.spec_digest,
            hooks_digest=identity.values["hooks"],
            tool_version=identity.values["version"],
            identity=identity.record() if with_identity else None,
        ),
    )


def test_an_identical_golden_is_left_alone_and_the_cached_fetch_skipped(home: Home) -> None:
    publish(home, with_identity=True)
    proc = home.golden()
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stdout
    assert '"step.cached"' in proc.stderr and '"step": "fetch"' in proc.stderr
    assert home.build_id() == BUILD_ID


def test_an_edited_hook_makes_the_build_go_on_and_keeps_the_old_golden(home: Home) -> None:
    publish(home, with_identity=True)
    with (home.repo / "hooks" / "common" / "90-seal.sh").open("a") as f:
        f.write("\n# an edit\n")
    proc = home.golden(("IMAGEFACTORY_CRASH_AT", "build.volume"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "hooks/common/90-seal.sh changed since build " + BUILD_ID in proc.stderr
    assert home.build_id() == BUILD_ID


def test_a_golden_from_before_identities_is_rebuilt(home: Home) -> None:
    publish(home, with_identity=False)
    proc = home.golden(("IMAGEFACTORY_CRASH_AT", "build.volume"))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "before identities were recorded" in proc.stderr
    assert home.build_id() == BUILD_ID
