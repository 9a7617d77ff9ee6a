"""The five shipped specs: valid, real sources, golden names, HCL twin, env overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.paths import distros_dir
from imagefactory.spec.loader import load_distro, load_spec_file, spec_files

FIVE = ["centos9", "rocky9", "fedora44", "debian13", "ubuntu24"]


def test_all_shipped_specs_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    for name in FIVE:
        assert f"{name}.yaml" in out


@pytest.mark.parametrize(
    ("alias", "name", "provider", "version"),
    [
        ("centos", "centos9", "zfsonlinux", "2.2.9"),
        ("rocky", "rocky9", "zfsonlinux", "2.2.9"),
        ("fedora", "fedora44", "zfsonlinux", "2.4.1"),
        ("debian", "debian13", "distro", "2.3.*"),
        ("ubuntu", "ubuntu24", "kernel", "2.2.2"),
    ],
)
def test_aliases_resolve_to_versioned_specs(
    alias: str, name: str, provider: str, version: str
) -> None:
    resolved = load_distro(alias, env={})
    assert resolved.spec.name == name
    assert resolved.spec.zfs.provider == provider
    assert resolved.spec.zfs.version == version


def test_plan_shows_real_image_checksum_and_zfs_source(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {
        "centos9": ("CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2", ".SHA256SUM (bsd)"),
        "rocky9": ("Rocky-9-GenericCloud-Base.latest.x86_64.qcow2", ".CHECKSUM (bsd)"),
        "fedora44": ("Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2", "CHECKSUM (clearsigned)"),
        "debian13": ("debian-13-genericcloud-amd64.qcow2", "SHA512SUMS (gnu)"),
        "ubuntu24": ("noble-server-cloudimg-amd64.img", "SHA256SUMS (gnu)"),
    }
    for name, (image, checksum) in expected.items():
        assert main(["plan", name]) == 0
        out = capsys.readouterr().out
        image_line = next(line for line in out.splitlines() if line.startswith("image:"))
        assert image_line.endswith(image)
        assert checksum in next(line for line in out.splitlines() if line.startswith("checksum:"))
        assert next(line for line in out.splitlines() if line.startswith("zfs:"))


def test_golden_names_follow_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "zfs:rpool/vms")
    monkeypatch.setenv("KLAB_GOLDEN_KIND", "ztest")
    assert main(["plan", "fedora", "--json"]) == 0


def test_plan_names_ztest_and_lean_goldens(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "zfs:rpool/vms")
    monkeypatch.delenv("KLAB_ZFS_BRANCH", raising=False)
    monkeypatch.setenv("KLAB_GOLDEN_KIND", "ztest")
    main(["plan", "fedora"])
    assert "golden:   rpool/vms/klab-ztest-fedora@golden" in capsys.readouterr().out
    monkeypatch.delenv("KLAB_GOLDEN_KIND")
    main(["plan", "fedora"])
    assert "golden:   rpool/vms/klab-golden-fedora@golden" in capsys.readouterr().out


def test_pr_branch_gets_its_own_golden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "zfs:rpool/vms")
    monkeypatch.setenv("KLAB_GOLDEN_KIND", "ztest")
    monkeypatch.setenv("KLAB_ZFS_BRANCH", "pr-12345")
    assert main(["plan", "fedora", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["golden"] == "rpool/vms/klab-ztest-fedora-pr-12345@golden"
    assert plan["spec"]["zfs"]["provider"] == "git"
    assert plan["spec"]["zfs"]["git"] == {
        "url": "https://github.com/openzfs/zfs",
        "branch": "pr-12345",
    }
    assert plan["environment"]["KLAB_ZFS_BRANCH"] == "pr-12345"


def test_branch_slugs_that_lose_information_get_a_hash() -> None:
    a = load_distro("fedora", lineage="ztest", env={"KLAB_ZFS_BRANCH": "fix/a"}).golden_leaf
    b = load_distro("fedora", lineage="ztest", env={"KLAB_ZFS_BRANCH": "fix-a"}).golden_leaf
    fork = load_distro(
        "fedora",
        lineage="ztest",
        env={"KLAB_ZFS_BRANCH": "fix-a", "KLAB_ZFS_SOURCE": "https://github.com/me/zfs"},
    ).golden_leaf
    assert b == "klab-ztest-fedora-fix-a"
    assert len({a, b, fork}) == 3
    assert all(name.startswith("klab-ztest-fedora-") for name in (a, b, fork))


def test_source_without_branch_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    env_main = main
    import os

    os.environ["KLAB_ZFS_SOURCE"] = "https://github.com/me/zfs"
    try:
        assert env_main(["plan", "fedora"]) == 2
    finally:
        del os.environ["KLAB_ZFS_SOURCE"]
    assert "KLAB_ZFS_BRANCH" in capsys.readouterr().err


def test_force_rebuild_from_environment() -> None:
    assert load_distro("debian", env={"KLAB_FORCE_REBUILD": "1"}).force_rebuild
    assert not load_distro("debian", env={}).force_rebuild
    assert load_distro("debian", env={"KLAB_FORCE_REBUILD": "1"}).overrides == {
        "KLAB_FORCE_REBUILD": "1"
    }


def test_bad_golden_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.environ["KLAB_GOLDEN_KIND"] = "fat"
    try:
        assert main(["plan", "debian"]) == 2
    finally:
        del os.environ["KLAB_GOLDEN_KIND"]
    assert "KLAB_GOLDEN_KIND='fat'" in capsys.readouterr().err


def test_hcl_twin_equals_yaml() -> None:
    yaml_spec, _ = load_spec_file(distros_dir() / "fedora44.yaml", env={})
    hcl_spec, _ = load_spec_file(distros_dir() / "fedora44.hcl", env={})
    assert hcl_spec == yaml_spec


def test_defaults_merge_keeps_distro_values_and_fills_the_rest() -> None:
    spec = load_distro("fedora", env={}).spec
    assert spec.vm.firmware == "uefi"  # from fedora44.yaml
    assert spec.vm.cpus == 2  # from _defaults.yaml
    assert spec.disk.ztest == 40 * 1024**3


def test_schema_is_json_and_forbids_unknown_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert "source" in schema["properties"]


def test_spec_files_lists_the_five_and_the_hcl_twin() -> None:
    names = sorted(p.name for p in spec_files())
    assert names == sorted([f"{n}.yaml" for n in FIVE] + ["fedora44.hcl"])


def test_missing_hook_script_is_reported_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imagefactory.errors import SpecError

    monkeypatch.chdir(tmp_path)
    source = (distros_dir() / "debian13.yaml").read_text()
    path = tmp_path / "debian13.yaml"
    path.write_text(source + "hooks:\n  lean:\n    - script: common/42-nope.sh\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(path, env={}, defaults=distros_dir() / "_defaults.yaml")
    line = len(source.splitlines()) + 3
    assert str(info.value).startswith(f"{path.name}:{line}: hooks.lean[0].script: hook script")


def test_the_ztest_bootstrap_adds_its_packages_and_the_lean_one_does_not() -> None:
    boot = load_distro("debian13", lineage="ztest", env={}).spec.source.bootstrap
    assert boot is not None
    lean, ztest = boot.for_lineage("lean"), boot.for_lineage("ztest")
    assert lean.packages == boot.packages
    assert ztest.packages == [*boot.packages, *boot.ztest_packages]
    assert "zfs-dkms" in ztest.packages and "zfs-dkms" not in lean.packages
    # Everything else (suite, kernel, components) is the same source.
    assert ztest.model_copy(update={"packages": boot.packages}) == lean
