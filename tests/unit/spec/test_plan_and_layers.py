"""`plan` names the golden as the store a build would use does; `validate` takes what a user
types (`distros/*.yaml`, the defaults layer included) and refuses names no store can hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import SpecError
from imagefactory.paths import distros_dir
from imagefactory.spec.loader import validate_layer_file
from imagefactory.spec.names import LONGEST_RELATIVE_SUFFIX, ZFS_NAME_MAX

FIVE = ["centos9", "debian13", "fedora44", "rocky9", "ubuntu24"]


def test_plan_with_a_files_store_names_the_qcow2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", f"file:{tmp_path / 'goldens'}")
    monkeypatch.delenv("KLAB_ZFS_BRANCH", raising=False)
    assert main(["plan", "debian13", "--kind", "ztest", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["golden"] == str(
        tmp_path / "goldens" / "klab-ztest-debian.qcow2"
    )
    assert not (tmp_path / "goldens").exists()  # plan creates nothing


def test_plan_store_flag_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "file:/nonexistent/goldens")
    monkeypatch.delenv("KLAB_ZFS_BRANCH", raising=False)
    assert main(["plan", "fedora", "--store", "zfs:tank/lab"]) == 0
    assert "golden:   tank/lab/klab-golden-fedora@golden" in capsys.readouterr().out


def test_a_300_character_branch_is_refused_by_plan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KLAB_ZFS_BRANCH", "b" * 300)
    assert main(["plan", "fedora", "--store", "zfs:rpool/vms"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "imagefactory: error: $KLAB_ZFS_BRANCH: zfs.git.branch: gives the golden name "
        "klab-golden-fedora-bbb"
    )
    assert "of 319 characters; the store takes at most 100: shorten the branch name by 219" in err


def test_a_name_over_255_bytes_with_the_store_root_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    branch = "pr-1"
    leaf = f"klab-golden-fedora-{branch}"
    # A root that makes the longest name the store creates exactly one byte too long.
    root_len = ZFS_NAME_MAX - LONGEST_RELATIVE_SUFFIX - len(leaf) - 1 + 1
    root = "tank/" + "r" * (root_len - 5)
    monkeypatch.setenv("KLAB_ZFS_BRANCH", branch)
    assert main(["plan", "fedora", "--store", f"zfs:{root}"]) == 2
    err = capsys.readouterr().err
    assert f"the golden {root}/{leaf}@golden" in err
    assert "need 256 bytes of dataset name; ZFS allows 255" in err
    assert main(["plan", "fedora", "--store", f"zfs:{root[:-1]}"]) == 0


def test_validate_distros_glob_checks_the_defaults_as_a_layer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(distros_dir().parent)
    monkeypatch.setenv("IMAGEFACTORY_STORE", "zfs:rpool/vms")
    paths = sorted(str(p.relative_to(distros_dir().parent)) for p in distros_dir().glob("*.yaml"))
    assert "distros/_defaults.yaml" in paths
    assert main(["validate", *paths]) == 0
    out = [line for line in capsys.readouterr().out.splitlines() if "distros/" in line]
    assert out[0] == "ok  distros/_defaults.yaml  (defaults layer, merged under every spec)"
    assert [line.split()[1] for line in out[1:]] == [f"distros/{n}.yaml" for n in FIVE]


def test_validate_without_arguments_includes_the_layer(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STORE", "zfs:rpool/vms")
    assert main(["validate"]) == 0
    assert "_defaults.yaml  (defaults layer" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vm:\n  memroy: 4GiB\n", "_defaults.yaml:2: vm.memroy: unknown key"),
        ("vm:\n  cpus: lots\n", "_defaults.yaml:2: vm.cpus: Input should be a valid integer"),
        ("disk: 10GiB\n", "_defaults.yaml:1: disk: must be a mapping, not str"),
        ("vm:\n  memory: 4GB\n", "_defaults.yaml:2: vm.memory: memory must be a whole number"),
        (
            "hooks:\n  lean:\n    - timeout: 5m\n",
            "_defaults.yaml:3: hooks.lean[0].script: required field is missing",
        ),
        ("vm:\n  boot_timeout: .nan\n", "_defaults.yaml:2: vm.boot_timeout: nan is not a finite"),
        ("a: &x 1\n", "_defaults.yaml:1: YAML anchor &x is not allowed in specs"),
    ],
)
def test_a_layer_has_known_keys_and_right_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    layer = tmp_path / "_defaults.yaml"
    layer.write_text(text)
    with pytest.raises(SpecError) as info:
        validate_layer_file(layer)
    assert str(info.value).startswith(expected)


def test_a_layer_needs_no_required_field_and_no_cross_field_rule(tmp_path: Path) -> None:
    layer = tmp_path / "_defaults.yaml"
    # provider git without git.url is only wrong once merged: a distro file may add it.
    layer.write_text("zfs:\n  provider: git\nvm:\n  cpus: 4\n")
    validate_layer_file(layer)
