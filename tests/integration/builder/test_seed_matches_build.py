"""`imagefactory seed` writes the seed a build boots with: one adapter (vm/fromspec.py).

The build side is the real `SeedStep` on a real build context (files store, image cache,
the hook plan `build_golden` reads), run by the build's step runner without a boot; the
command side is a real `imagefactory seed` process.  The two may differ only in what is
new for every boot: the SSH key pair (and its comment) and the instance-id.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from imagefactory.builder.context import BuildContext, BuildOptions
from imagefactory.builder.pipeline import SeedStep
from imagefactory.builder.steps import Step, StepRunner
from imagefactory.fetch.cache import ImageCache
from imagefactory.spec.loader import load_distro
from imagefactory.store.files import FileStore
from imagefactory.vm.fromspec import hook_plan
from imagefactory.vm.payload import MARKER
from imagefactory.vm.seed import SEED_FILES, read_seed_iso

DISTRO = "debian13"


def clean_env() -> dict[str, str]:
    """No KLAB_* or IMAGEFACTORY_* override from the caller's shell reaches either side."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KLAB_", "IMAGEFACTORY_"))}


def command_seed(out: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "-q", "seed", DISTRO, "--kind", "ztest",
         "--out", str(out)],
        env=clean_env(), check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def build_seed(tmp_path: Path) -> tuple[Path, Path, str]:
    """The build's seed directory and ISO, and the public key it authorised."""
    resolved = load_distro(DISTRO, lineage="ztest", env={})
    ctx = BuildContext(
        resolved, FileStore(tmp_path / "store"), ImageCache(tmp_path / "cache"), BuildOptions()
    )
    ctx.build_dir = tmp_path / "build"
    ctx.plan = hook_plan(resolved)  # as build_golden reads it
    public: list[str] = []

    class ReadKey:
        """Reads the public half before the run ends (the seed step removes the key)."""

        name = "read-key"

        def run(self, ctx: BuildContext) -> None:
            public.append((ctx.build_dir / "ssh" / "id_ed25519.pub").read_text().strip())

        def cleanup(self, ctx: BuildContext) -> None:
            """Nothing made."""

    steps: list[Step[BuildContext]] = [SeedStep(), ReadKey()]
    StepRunner(steps).run(ctx)
    assert ctx.seed_iso == ctx.build_dir / "seed.iso"
    assert not (ctx.build_dir / "ssh" / "id_ed25519").exists(), "the key outlived the run"
    return ctx.build_dir / "seed", ctx.seed_iso, public[0]


def normalised(directory: Path, public_key: str) -> dict[str, str]:
    """The seed's files with the per-boot values replaced by placeholders."""
    comment = public_key.split()[-1]
    files = {name: (directory / name).read_text() for name in SEED_FILES}
    user_data = files["user-data"].replace(public_key, "<public key>")
    files["user-data"] = user_data.replace(comment, "<key comment>")
    meta = yaml.safe_load(files["meta-data"])
    assert re.fullmatch(r"imagefactory-debian13-[0-9a-f]{16}", meta["instance-id"])
    files["meta-data"] = files["meta-data"].replace(meta["instance-id"], "<instance-id>")
    return files


def test_imagefactory_seed_writes_the_builds_seed_but_for_key_and_instance_id(
    tmp_path: Path,
) -> None:
    out = tmp_path / "seed-command"
    command_seed(out)
    build_dir, build_iso, build_key = build_seed(tmp_path)
    command_key = (out / "ssh" / "id_ed25519.pub").read_text().strip()
    assert command_key != build_key

    command = normalised(out, command_key)
    build = normalised(build_dir, build_key)

    assert command == build
    # Both carry what the build needs (the old `seed` dropped these): the hooks' KLAB_*
    # environment and the payloads packed into them.
    user_data = build["user-data"]
    assert "KLAB_DISTRO=debian13" in user_data and "KLAB_LINEAGE=ztest" in user_data
    assert MARKER.decode() in user_data
    assert "<public key>" in user_data and "<key comment>" in user_data
    # Each ISO holds exactly the files next to it.
    for directory, iso in ((out, out / "seed.iso"), (build_dir, build_iso)):
        assert read_seed_iso(iso) == {n: (directory / n).read_bytes() for n in SEED_FILES}
