"""A small golden in a files store, exported for real by the `imagefactory` CLI.

The golden's virtual size (64 MiB + 1.5 KiB) is deliberately not a whole MiB, so the VHD
export's rounding is exercised; it holds random data, zeros (holes) and one compressible
MiB, so sparse and compressed outputs have something to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagefactory.store.base import Golden, Provenance
from imagefactory.store.files import FileStore
from tests.fixtures.stores import IMAGE_SIZE, MIB, make_raw_image

LEAF = "klab-golden-debian"
ODD_SIZE = IMAGE_SIZE + 1536
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Exporter:
    store: FileStore
    golden: Golden
    out_dir: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imagefactory", "--log-format", "json", "export",
             "--store", self.store.spec, *args],
            capture_output=True, text=True, env=self.env, cwd=self.out_dir, timeout=600,
        )  # fmt: skip

    def export(self, fmt: str, name: str | None = None) -> Path:
        out = self.out_dir / (name or f"export-{fmt}")
        proc = self.cli(LEAF, "--format", fmt, "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        return out


@pytest.fixture
def exporter(tmp_path: Path) -> Exporter:
    raw = make_raw_image(tmp_path / "golden.raw", seed=7, size=ODD_SIZE)
    with raw.open("r+b") as f:  # a compressible MiB
        f.seek(20 * MIB)
        f.write(b"klab" * (MIB // 4))
    store = FileStore(tmp_path / "store")
    volume = store.create_build_volume(LEAF, "b1", ODD_SIZE)
    volume = store.write_image(volume, raw, source_format="raw")
    provenance = Provenance(
        distro="debian13", lineage="lean", build_id="b1", zfs_version="2.3.2",
        spec_digest="sha256:" + "b" * 64,
    )  # fmt: skip
    golden = store.publish(volume, provenance)
    raw.unlink()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "IMAGEFACTORY_STATE": str(tmp_path / "state"), "PYTHONPATH": str(REPO)}
    return Exporter(store, golden, out_dir, env)
