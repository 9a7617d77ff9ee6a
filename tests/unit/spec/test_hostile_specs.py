"""Hostile spec files: each is refused with one clear `file:line` error, exit 2, no traceback.

The reproductions of issue 13: an alias bomb, merge keys, tags, a file over 1 MiB, non-UTF-8
bytes, 100,000 nested brackets, NaN and infinities, HCL duplicates, calls and
interpolations.  The CLI cases run `imagefactory` in a child under an address-space cap, so
a regression (the bomb grew `validate` past 4.9 GB) fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import SpecError
from imagefactory.spec.loader import load_spec_file
from imagefactory.spec.located import MAX_SPEC_BYTES
from tests.unit.spec.test_errors import GOOD

MEMORY_CAP = 1024**3  # the bomb needed 4.9 GB; a spec needs well under 200 MB


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def error_of(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec_file(path, env={})
    return info.value


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`imagefactory ARGS` in a child capped at MEMORY_CAP of address space."""
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        preexec_fn=_cap_memory,  # the cap applies to the child only
        timeout=300,
        check=False,
    )


def alias_bomb(levels: int = 9) -> str:
    """The issue's 500-byte bomb: each level lists the previous one nine times."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_cli_refuses_the_bomb_deep_nesting_and_hcl_calls_in_little_memory(
    tmp_path: Path,
) -> None:
    """One capped `validate` run over the issue's reproductions: each gets its own line."""
    bomb = write(tmp_path, alias_bomb(), "bomb.yaml")
    assert bomb.stat().st_size < 600
    files = [
        bomb,
        write(tmp_path, "a: " + "[" * 100_000, "deep.yaml"),
        write(tmp_path, "a = " + "[" * 100_000, "deep.hcl"),
        write(tmp_path, HCL_GOOD.replace('"13"', 'file("/etc/passwd")'), "call.hcl"),
    ]
    proc = cli(tmp_path, "validate", *map(str, files))
    assert proc.returncode == 2
    expected = [
        "bomb.yaml:1: YAML anchor &a0 is not allowed in specs",
        "deep.yaml:1: nested deeper than 32 levels",
        "deep.hcl:1: nested deeper than 32 levels",
        'call.hcl:4: release: a function call is not allowed in specs: file("/etc/passwd")',
        "hint: a spec holds data only: write the value itself (a quoted string, a number)",
        "4 of 4 spec(s) invalid",
    ]
    lines = proc.stderr.splitlines()
    assert all(line in lines for line in expected), proc.stderr
    assert [lines.index(line) for line in expected] == sorted(lines.index(e) for e in expected)
    assert lines[lines.index(expected[0]) + 1] == (
        "hint: specs are layered (distros/_defaults.yaml); repeat the value instead"
    )
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("insert", "line", "message"),
    [
        ("extra: &anchor 1\n", 18, "YAML anchor &anchor is not allowed in specs"),
        ("extra: *nowhere\n", 18, "YAML alias *nowhere is not allowed in specs"),
        ("<<: {name: other}\n", 18, "YAML merge key << is not allowed in specs"),
        ("extra: !!python/object:os.system x\n", 18, "YAML tag tag:yaml.org,2002:python/"),
        ("extra: !!binary aGk=\n", 18, "YAML tag tag:yaml.org,2002:binary is not allowed"),
        ("extra: !custom x\n", 18, "YAML tag !custom is not allowed in specs"),
    ],
)
def test_yaml_reuse_and_tags_are_refused_with_their_line(
    tmp_path: Path, insert: str, line: int, message: str
) -> None:
    error = str(error_of(write(tmp_path, GOOD + insert)))
    assert error.startswith(f"spec.yaml:{line}: ")
    assert message in error


def test_a_spec_over_1_mib_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    # Valid YAML padded with a comment: only the size check can refuse it.
    padding = "#" + "x" * (MAX_SPEC_BYTES - len(GOOD)) + "\n"
    path = write(tmp_path, GOOD + padding)
    assert path.stat().st_size > MAX_SPEC_BYTES
    error = error_of(path)
    assert str(error) == "spec.yaml: larger than 1024 KiB; not read"
    assert error.hint is not None
    write(tmp_path, GOOD + padding[: -(len(GOOD) + 10)] + "\n")
    load_spec_file(tmp_path / "spec.yaml", env={})  # just under the limit: read and valid


def test_non_utf8_spec_names_line_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.encode().replace(b"debian\n", b"deb\xe9an\n", 1))
    error = error_of(path)
    assert str(error) == "spec.yaml:2: not UTF-8 text (byte 0xe9 at offset 27)"
    assert error.hint == "save the spec as UTF-8"


def test_a_fifo_named_like_a_spec_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    from imagefactory.spec.loader import read_document

    with pytest.raises(SpecError, match=r"spec.yaml: not a regular file"):
        read_document(fifo)


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "1.0e+400"])
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str) -> None:
    text = GOOD.replace("cloud_init:\n", f"vm:\n  boot_timeout: {value}\ncloud_init:\n")
    message = str(error_of(write(tmp_path, text)))
    assert message.startswith("spec.yaml:13: vm.boot_timeout: ")
    assert "is not a finite number" in message


def test_non_finite_numbers_are_refused_in_hcl_too(tmp_path: Path) -> None:
    path = write(tmp_path, "vm {\n  boot_timeout = 1.0e999\n}\n", "spec.hcl")
    assert str(error_of(path)).startswith("spec.hcl:2: vm.boot_timeout: inf is not a finite")


def test_plan_json_is_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "debian13", "--json", "--store", "zfs:rpool/vms"]) == 0

    def refuse(constant: str) -> None:
        raise AssertionError(f"plan --json printed {constant}")

    plan = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert plan["spec"]["vm"]["boot_timeout"] == 6 * 3600.0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2024-02-30", "day is out of range for month"),
        ("9" * 5000, "Exceeds the limit (4300 digits) for integer string conversion"),
    ],
)
def test_yaml_scalars_without_a_value_are_errors(tmp_path: Path, value: str, reason: str) -> None:
    text = GOOD.replace('release: "13"', f"release: {value}")
    error = str(error_of(write(tmp_path, text)))
    assert error.startswith("spec.yaml:4: release: cannot read ")
    assert reason in error


def test_control_character_in_yaml_names_line_and_code(tmp_path: Path) -> None:
    error = error_of(write(tmp_path, GOOD.replace("debian\n", "deb\x1bian\n", 1)))
    assert str(error) == "spec.yaml:2: invalid YAML: character U+001B is not allowed"


# ---------------------------------------------------------------- HCL

HCL_GOOD = (
    'name = "x"\nshort = "debian"\nfamily = "debian"\nrelease = "13"\n'
    'source {\n  cloud_image {\n    url = "https://a.test/x.qcow2"\n'
    f'    digest = "sha256:{"ab" * 32}"\n  }}\n}}\n'
    'disk {\n  lean = "1GiB"\n  ztest = "2GiB"\n}\n'
    'cloud_init {\n  default_user {\n    name = "debian"\n  }\n}\n'
    'zfs {\n  version = "2.3.*"\n  provider = "distro"\n}\n'
)


def test_the_hcl_sample_is_valid(tmp_path: Path) -> None:
    spec, _ = load_spec_file(write(tmp_path, HCL_GOOD, "spec.hcl"), env={})
    assert spec.release == "13"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'release = "13"\n',
            'release = "13"\nrelease = "14"\n',
            "spec.hcl:5: release: duplicate key (first at line 4)",
        ),
        (
            'disk {\n  lean = "1GiB"\n',
            'disk {\n  lean = "1GiB"\n  lean = "9GiB"\n',
            "spec.hcl:13: disk.lean: duplicate key (first at line 12)",
        ),
        (
            "zfs {\n",
            'disk {\n  lean = "5GiB"\n}\nzfs {\n',
            "spec.hcl:20: disk: duplicate key (first at line 11)",
        ),
        (
            'release = "13"',
            'release = file("/etc/passwd")',
            'spec.hcl:4: release: a function call is not allowed in specs: file("/etc/passwd")',
        ),
        (
            'release = "13"',
            'release = "${var.release}"',
            'spec.hcl:4: release: an interpolation is not allowed in specs: "${var.release}"',
        ),
        (
            'release = "13"',
            'release = "v%{ if true }13%{ endif }"',
            "spec.hcl:4: release: a template directive is not allowed in specs",
        ),
        (
            'release = "13"',
            "release = local.release",
            "spec.hcl:4: release: a reference is not allowed in specs: local.release",
        ),
        (
            'release = "13"',
            'release = "1" + "3"',
            'spec.hcl:4: release: an operator expression is not allowed in specs: "1" + "3"',
        ),
        (
            'release = "13"',
            "release = <<EOT\n13\nEOT\n",
            "spec.hcl:4: heredocs are not allowed in specs",
        ),
        (
            "disk {",
            'disk "main" {',
            "spec.hcl:11: disk: block labels are not used in specs",
        ),
        ("/* never", "/* never", "spec.hcl:24: invalid HCL: unterminated /* comment"),
    ],
)
def test_hcl_is_literal_data_and_names_are_unique(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    text = HCL_GOOD.replace(old, new, 1) if old in HCL_GOOD else HCL_GOOD + new
    assert str(error_of(write(tmp_path, text, "spec.hcl"))).startswith(expected)


def test_escaped_hcl_interpolation_is_literal_text(tmp_path: Path) -> None:
    text = HCL_GOOD.replace('name = "x"', 'name = "x"\ndescription = "cost $${x} \\u00e9"')
    spec, _ = load_spec_file(write(tmp_path, text, "spec.hcl"), env={})
    assert spec.description == "cost ${x} é"
