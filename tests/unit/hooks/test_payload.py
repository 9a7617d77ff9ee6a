"""The payload travels inside 60-payload.sh and installs where the lab expects it.

Real round trip: pack hooks/payload/ with the host-side packer, append it to the hook the
spec names, run that hook (installing under a scratch root instead of /), and check what
landed where, that a rerun changes nothing, and that the seed carrying it stays valid
cloud-config.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from imagefactory.paths import hooks_dir
from imagefactory.spec.loader import ResolvedSpec, load_distro
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.payload import (
    MARKER,
    attach_payload,
    pack_directory,
    payload_dir,
    unpack,
    with_payloads,
)
from imagefactory.vm.userdata import UserDataInputs, build_cloud_config, render_user_data

FIVE = ["centos9", "rocky9", "fedora44", "debian13", "ubuntu24"]
PAYLOAD = hooks_dir() / "payload"


def ztest_plan(resolved: ResolvedSpec) -> HookPlan:
    """The ztest hooks as the build reads them (before the payload is attached)."""
    return HookPlan.of(
        Hook.from_file(hooks_dir() / entry.script, timeout=float(entry.timeout), env=entry.env)
        for entry in resolved.spec.hooks.for_lineage("ztest")
    )


def packed_hook() -> Hook:
    hook = Hook.from_file(hooks_dir() / "ztest" / "60-payload.sh", timeout=300)
    return attach_payload(hook)


def run_hook(hook: Hook, root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / hook.name
    script.write_bytes(hook.content)
    script.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "KLAB_PAYLOAD_ROOT": str(root)}
    return subprocess.run([script], env=env, capture_output=True, text=True, check=False)


def test_packing_is_reproducible() -> None:
    assert pack_directory(PAYLOAD) == pack_directory(PAYLOAD)


def test_only_the_hook_with_the_directive_gets_the_payload() -> None:
    resolved = load_distro("debian13", lineage="ztest", env={})
    plain = ztest_plan(resolved)
    packed = with_payloads(plain)
    assert packed.names == plain.names
    carriers = {"60-payload.sh": "payload", "80-golden-facts.sh": "ztest/inventory"}
    for before, after in zip(plain.hooks, packed.hooks, strict=True):
        if before.name in carriers:
            assert payload_dir(before) == carriers[before.name]
            assert after.content.startswith(before.content)
            assert MARKER in after.content
        else:
            assert after.content == before.content
    facts = next(h for h in packed.hooks if h.name == "80-golden-facts.sh")
    writer = hooks_dir() / "ztest" / "inventory" / "suite_inventory.py"
    assert unpack(facts.content) == {"suite_inventory.py": writer.read_bytes()}


def test_unpacked_payload_is_the_payload_directory() -> None:
    files = unpack(packed_hook().content)
    expected = {p.relative_to(PAYLOAD).as_posix() for p in PAYLOAD.rglob("*") if p.is_file()}
    assert set(files) == expected
    assert files["zfs-bt/zio.bt"] == (PAYLOAD / "zfs-bt" / "zio.bt").read_bytes()


def test_packed_hook_installs_scripts_recipes_and_runfiles(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/share/zfs/runfiles").mkdir(parents=True)
    proc = run_hook(packed_hook(), root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    bt = root / "usr/local/share/zfs-bt"
    assert sorted(p.name for p in bt.iterdir()) == ["arc.bt", "spl.bt", "txg.bt", "zio.bt"]
    recipes = root / "usr/local/share/klab/recipes"
    assert sorted(p.name for p in recipes.iterdir()) == [
        "_lib.sh",
        "arc-pressure.sh",
        "dedup-pressure.sh",
        "encryption-verify.sh",
        "pool-corruption-block.sh",
        "replication-chaos.sh",
    ]
    assert stat.S_IMODE((recipes / "arc-pressure.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((recipes / "_lib.sh").stat().st_mode) == 0o644
    for runfile in ("quick.run", "linux-fault.run"):
        source = (PAYLOAD / "runfiles" / runfile).read_bytes()
        assert (root / "usr/share/zfs/runfiles" / runfile).read_bytes() == source
        assert (root / "usr/local/share/klab/runfiles" / runfile).read_bytes() == source
    # A recipe finds its library next to itself once installed.
    check = subprocess.run(["bash", "-n", recipes / "replication-chaos.sh"], check=False)
    assert check.returncode == 0


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/share/zfs/runfiles").mkdir(parents=True)
    hook = packed_hook()
    assert run_hook(hook, root, tmp_path).returncode == 0
    again = run_hook(hook, root, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "installed" not in again.stdout.replace("payload installed", "")


def test_runfiles_go_to_a_rebuilt_suite_when_20_zfs_source_built_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    facts = root / "etc/imagefactory/zfs-source.env"
    facts.parent.mkdir(parents=True)
    facts.write_text("KLAB_FACT_ZTS_DIR=/opt/klab/zfs-2.3.4/share/zfs\n")
    (root / "opt/klab/zfs-2.3.4/share/zfs/runfiles").mkdir(parents=True)
    proc = run_hook(packed_hook(), root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (root / "opt/klab/zfs-2.3.4/share/zfs/runfiles/quick.run").is_file()


def test_hook_without_payload_fails_naming_the_packer(tmp_path: Path) -> None:
    bare = Hook.from_file(hooks_dir() / "ztest" / "60-payload.sh", timeout=300)
    proc = run_hook(bare, tmp_path / "root", tmp_path)
    assert proc.returncode == 1
    assert "with_payloads" in proc.stderr


def test_hook_fails_when_the_suite_is_missing(tmp_path: Path) -> None:
    proc = run_hook(packed_hook(), tmp_path / "root", tmp_path)
    assert proc.returncode == 1
    assert "runfile directory" in proc.stderr


@pytest.mark.parametrize("name", FIVE)
def test_ztest_user_data_with_payload_is_valid_cloud_config(name: str, tmp_path: Path) -> None:
    cloud_init = shutil.which("cloud-init")
    if cloud_init is None:
        pytest.skip("cloud-init is not installed (scripts/host-deps.sh installs it)")
    resolved = load_distro(name, lineage="ztest", env={})
    inputs = UserDataInputs(
        default_user=resolved.spec.cloud_init.default_user.name,
        ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK8testkeytestkeytestkeytestkey x",
        build_key_comment="imagefactory-build-test-0000",
        hooks=with_payloads(ztest_plan(resolved)),
    )
    text = render_user_data(build_cloud_config(inputs))
    assert len(text) < 256 * 1024
    paths = [f["path"] for f in yaml.safe_load(text)["write_files"]]
    assert "/var/lib/imagefactory/hooks/60-payload.sh" in paths
    user_data = tmp_path / "user-data"
    user_data.write_text(text)
    proc = subprocess.run(
        [cloud_init, "schema", "--config-file", user_data],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
