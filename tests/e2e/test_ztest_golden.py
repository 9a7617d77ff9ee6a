"""The Debian ztest golden, built for real, boots (as a clone) ready for the test suite.

A verification hook in a throw-away clone checks the module, the suite's version, ksh,
zfs-tests.sh, the sparse vdevs, zed, the zfs user's sudo, runs every bpftrace script during
a scrub and every recipe.  The golden itself is never booted or changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.spec.loader import load_distro
from imagefactory.store.select import open_store
from imagefactory.testrun.inventory import load_inventory
from imagefactory.vm.fromspec import seed_files, vm_config
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.provision import provision
from imagefactory.vm.seed import build_key_comment, generate_ssh_key
from tests.fixtures.ztest_golden import ZtestGolden

pytestmark = [pytest.mark.vm, pytest.mark.root]

VERIFY = Path(__file__).parent / "hooks" / "10-verify-ztest.sh"
RECIPES = ("arc-pressure", "dedup-pressure", "encryption-verify", "pool-corruption-block",
           "replication-chaos")  # fmt: skip


def test_status_shows_the_payload(debian_ztest_golden: ZtestGolden) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "status", "--json"],
        env=debian_ztest_golden.env,
        capture_output=True,
        text=True,
        check=True,
    )
    lineages = {entry["lineage"]: entry for entry in json.loads(proc.stdout)["lineages"]}
    row = next(r for r in lineages["ztest"]["goldens"] if r["golden"] == "klab-ztest-debian")
    assert row["present"] and row["ready"], row
    assert row["problems"] == []
    assert row["zfs_version"].startswith("2.3.")
    assert row["suite_version"] == row["zfs_version"]
    # The guest facts travel in the golden's provenance (not this host's build state).
    assert row["ksh"] and row["zfs_tests_sh"], row
    assert row["vdevs"] and row["vdevs"] == row["vdev_count"], row
    text = subprocess.run(
        [sys.executable, "-m", "imagefactory", "status"],
        env=debian_ztest_golden.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert text.startswith("=== klab status ===")
    debian = next(line for line in text.splitlines() if "debian" in line and "2.3." in line)
    assert "❌" not in debian, text


def test_the_golden_keeps_its_suite_inventory(debian_ztest_golden: ZtestGolden) -> None:
    """--run/--group resolve on the host against this file: it must exist and match."""
    golden = open_store(debian_ztest_golden.store).get_golden(debian_ztest_golden.leaf)
    assert golden is not None
    digest = golden.provenance.inventory_digest
    assert digest is not None and digest.startswith("sha256:")
    inventory = load_inventory(digest, debian_ztest_golden.state)
    assert inventory.suite_version == golden.provenance.suite_version
    assert "cli_root/zpool_create/zpool_create_001_pos" in inventory.tests
    assert len(inventory.tests) > 1000, len(inventory.tests)


def test_a_clone_boots_ready_for_the_suite(
    debian_ztest_golden: ZtestGolden, tmp_path: Path
) -> None:
    store = open_store(debian_ztest_golden.store)
    spec = load_distro("debian13", lineage="ztest", env={}).spec
    plan = HookPlan.of([Hook.from_file(VERIFY, timeout=1800)])
    clone = store.clone(debian_ztest_golden.leaf)
    try:
        key = generate_ssh_key(tmp_path / "ssh", build_key_comment("verify"))
        seed = tmp_path / "seed.iso"
        seed_files(spec, plan, key).write_iso(seed)
        config = vm_config(spec, disk=clone.path, disk_format=clone.format, seed=seed, accel="tcg")
        result = provision(config, plan, log_dir=tmp_path)
    finally:
        store.destroy_clone(clone)
    console = result.console_log.read_text(errors="replace")
    assert result.ok, f"{result.report()}\n{console[-6000:]}"
    for check in ("module 2.3.", "suite 2.3.", "ksh", "zfs-tests.sh", "8 sparse vdevs",
                  "zed disabled", "zfs user sudo", "all"):  # fmt: skip
        assert f"verify: ok {check}" in console, check
    for script in ("zio", "txg", "arc", "spl"):
        assert f"verify: ok bpftrace {script}.bt" in console
    # zio.bt prints latency histograms: bucket lines with a bar of '@'s.
    zio_lines = [line for line in console.splitlines() if "zio.bt| " in line]
    assert any("|@" in line for line in zio_lines), "\n".join(zio_lines)
    for recipe in RECIPES:
        assert f"{recipe}: PASS" in console
        assert f"verify: ok recipe {recipe}" in console
    assert store.list_clones(debian_ztest_golden.leaf) == []
