"""Invalid specs exit 2 with `file:line: field.path: message`; the lines are pinned here."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import SpecError
from imagefactory.spec.loader import load_spec_file

GOOD = textwrap.dedent(
    """\
    name: testdistro
    short: debian
    family: debian
    release: "13"
    source:
      cloud_image:
        url: https://images.example.test/debian-13-genericcloud-amd64.qcow2
        digest: sha512:{digest}
    disk:
      lean: 10GiB
      ztest: 40GiB
    cloud_init:
      default_user:
        name: debian
    zfs:
      version: 2.3.*
      provider: distro
    """
).replace("{digest}", "ab" * 64)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors show paths relative to the working directory, as a user in a checkout sees them."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec_file(path, env={})
    return str(info.value)


def test_good_spec_loads(tmp_path: Path) -> None:
    spec, applied = load_spec_file(write(tmp_path, GOOD), env={})
    assert spec.name == "testdistro"
    assert str(spec.source.cloud_image.digest if spec.source.cloud_image else "") == (
        "sha512:" + "ab" * 64
    )
    assert applied == {}


def test_unknown_key_names_file_line_and_field(tmp_path: Path) -> None:
    text = GOOD.replace("  firmware", "").replace(
        "cloud_init:\n", "vm:\n  memroy: 4GiB\ncloud_init:\n"
    )
    path = write(tmp_path, text)
    assert error_of(path) == f"{path.name}:13: vm.memroy: unknown key"


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    text = GOOD.replace("cloud_init:\n", "vm:\n  memory: 4GiB\n  cpus: lots\ncloud_init:\n")
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path.name}:14: vm.cpus: ")
    assert "integer" in message


def test_malformed_digest_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("sha512:" + "ab" * 64, "sha512:abc123"))
    message = error_of(path)
    assert message.startswith(f"{path.name}:8: source.cloud_image.digest: ")
    assert "128 lowercase hex characters" in message


def test_bad_url_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("https://images.example.test/", "ftp://images/"))
    assert error_of(path).startswith(f"{path.name}:7: source.cloud_image.url: not an http(s) URL")


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    name: debian\n", "    sudo: true\n"))
    assert error_of(path) == (
        f"{path.name}:13: cloud_init.default_user.name: required field is missing"
    )


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace("family: debian", "family: gentoo").replace("version: 2.3.*", "version: x")
    lines = error_of(write(tmp_path, text)).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["family", "zfs.version"]
    assert lines[0].startswith("spec.yaml:3: ")
    assert lines[1].startswith("spec.yaml:16: ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('release: "13"\n', 'release: "13"\nrelease: "14"\n'))
    assert error_of(path) == f"{path.name}:5: release: duplicate key"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  cloud_image:\n", "  cloud_image: [\n"))
    assert error_of(path).startswith(f"{path.name}:")
    assert "invalid YAML" in error_of(path)


def test_secure_boot_on_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("cloud_init:\n", "vm:\n  secure_boot: true\ncloud_init:\n")
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path.name}:13: vm.secure_boot: secure boot must be off")


def test_error_in_defaults_layer_points_at_defaults_file(tmp_path: Path) -> None:
    write(tmp_path, "vm:\n  cpus: 0\n", "_defaults.yaml")
    path = write(tmp_path, GOOD)
    assert error_of(path).startswith("_defaults.yaml:2: vm.cpus: ")


def test_hcl_error_lines(tmp_path: Path) -> None:
    hcl = tmp_path / "spec.hcl"
    hcl.write_text(
        'name = "x"\nshort = "debian"\nfamily = "debian"\nrelease = "13"\n'
        'source {\n  cloud_image {\n    url = "https://a.test/x.qcow2"\n'
        '    digest = "sha256:zz"\n  }\n}\n'
        'disk {\n  lean = "1GiB"\n  ztest = "2GiB"\n  bogus = 1\n}\n'
        'cloud_init {\n  default_user {\n    name = "debian"\n  }\n}\n'
        'zfs {\n  version = "2.3.*"\n  provider = "distro"\n}\n'
    )
    lines = error_of(hcl).splitlines()
    assert "spec.hcl:8: source.cloud_image.digest: digest must look like" in lines[0]
    assert lines[1] == "spec.hcl:14: disk.bogus: unknown key"


def test_cli_validate_exits_2_with_the_error_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("release:", "relase:"))
    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "spec.yaml:4: relase: unknown key" in proc.stderr
    assert "spec.yaml:1: release: required field is missing" in proc.stderr


def test_unknown_distro_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "fedro"]) == 2
    err = capsys.readouterr().err
    assert "unknown distro 'fedro'" in err
    assert "did you mean fedora44?" in err
