"""A throw-away project root for pipeline tests: spec, hooks, store, cache, state.

The spec's bootstrap source has exactly the inputs of the `bootstrap_image` fixture and
the build uses the fixture's cache, so `fetch` is a cache hit and each build pays only
for its boot.  Builds run as real `imagefactory` processes so tests can kill them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from imagefactory.paths import project_root
from tests.fixtures.cache_dirs import fixture_cache_root
from tests.fixtures.guest_images import TEST_KERNEL, TEST_PACKAGES, TEST_SUITE

HOOKS = Path(__file__).parent / "hooks"


def spec_document(name: str, hooks: list[str]) -> dict[str, object]:
    return {
        "name": name,
        "short": "debian",
        "family": "debian",
        "release": "13",
        "source": {
            "default": "bootstrap",
            "bootstrap": {
                "suite": TEST_SUITE,
                "components": ["main"],
                "kernel": TEST_KERNEL,
                "packages": list(TEST_PACKAGES),
            },
        },
        "disk": {"lean": "5GiB", "ztest": "5GiB"},
        "vm": {"memory": "1536MiB", "cpus": 2, "boot_timeout": "15m"},
        "cloud_init": {"default_user": {"name": "debian"}},
        "hooks": {"lean": [{"script": h, "timeout": "5m"} for h in hooks]},
        "zfs": {"version": "2.3.*", "provider": "distro"},
    }


@dataclass
class Project:
    root: Path
    store_dir: Path
    state: Path
    env: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, check: bool = False, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "imagefactory", "--log-format", "json", *args],
            capture_output=True,
            text=True,
            env={**self.env, **(extra_env or {})},
            check=False,
            timeout=1800,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}\n{proc.stderr[-4000:]}")
        return proc

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "imagefactory", "--log-format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **(extra_env or {})},
        )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, bootstrap_image: Path) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    repo = project_root()
    (root / "distros").mkdir()
    (root / "hooks").mkdir()
    for name in ("common", "runner"):
        (root / "hooks" / name).symlink_to(repo / "hooks" / name)
    (root / "hooks" / "test").symlink_to(HOOKS)
    (root / "cloud-init").symlink_to(repo / "cloud-init")
    (root / "keys").symlink_to(repo / "keys")
    specs = {
        "debtest": ["test/10-marker.sh", "common/90-seal.sh"],
        "debfail": ["test/10-marker.sh", "test/20-fail.sh", "common/90-seal.sh"],
    }
    for name, hooks in specs.items():
        (root / "distros" / f"{name}.yaml").write_text(yaml.safe_dump(spec_document(name, hooks)))
    env = {
        **os.environ,
        "IMAGEFACTORY_HOME": str(root),
        "IMAGEFACTORY_STORE": f"file:{root / 'store'}",
        "IMAGEFACTORY_CACHE": str(fixture_cache_root() / "images"),
        "IMAGEFACTORY_STATE": str(root / "state"),
    }
    env.pop("IMAGEFACTORY_CRASH_AT", None)
    env.pop("KLAB_FORCE_REBUILD", None)
    yield Project(root, root / "store", root / "state", env)
