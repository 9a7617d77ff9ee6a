"""Every ztest hook and recipe is valid bash and shellcheck-clean (STYLE.md).

These scripts only ever run inside guests; this is the check that catches a syntax error
or an unquoted expansion before a 90-minute build does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.paths import hooks_dir
from imagefactory.run import require_tool
from imagefactory.vm.hookplan import Hook
from imagefactory.vm.inline import DIRECTIVE

HOOKS = sorted((hooks_dir() / "ztest").glob("*.sh"))
RECIPES = sorted((hooks_dir() / "payload" / "recipes").glob("*.sh"))
SEAL = hooks_dir() / "common" / "90-seal.sh"
SCRIPTS = HOOKS + RECIPES + [SEAL]


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_the_payload_has_the_five_recipes_and_every_hook_is_there() -> None:
    assert [p.name for p in HOOKS] == [
        "05-grow-root.sh",
        "10-zfs.sh",
        "20-zfs-source.sh",
        "30-tools.sh",
        "40-testenv.sh",
        "50-vdevs.sh",
        "60-payload.sh",
        "80-golden-facts.sh",
        "_lib.sh",
    ]
    assert [p.name for p in RECIPES] == [
        "_lib.sh",
        "arc-pressure.sh",
        "dedup-pressure.sh",
        "encryption-verify.sh",
        "pool-corruption-block.sh",
        "replication-chaos.sh",
    ]


@pytest.mark.parametrize("script", SCRIPTS, ids=_id)
def test_script_parses_with_bash_n(script: Path) -> None:
    proc = subprocess.run(["bash", "-n", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=_id)
def test_script_is_shellcheck_clean(script: Path) -> None:
    shellcheck = require_tool("shellcheck", package="shellcheck")
    proc = subprocess.run(
        [shellcheck, "-x", "-P", "SCRIPTDIR", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=script.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("script", [s for s in HOOKS if s.name != "_lib.sh"], ids=_id)
def test_a_packed_hook_is_self_contained_and_still_parses(script: Path, tmp_path: Path) -> None:
    """What the guest gets: the shared library inlined, no line left that loads a file."""
    packed = Hook.from_file(script, timeout=60).content
    assert DIRECTIVE.search(packed) is None
    assert b"\nsay() {" in packed and packed.count(b"\nsay() {") == 1
    out = tmp_path / script.name
    out.write_bytes(packed)
    proc = subprocess.run(["bash", "-n", out], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name != "_lib.sh"], ids=_id)
def test_script_is_executable_with_strict_mode(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert script.stat().st_mode & 0o111
    # STYLE.md: no silently ignored failures.
    assert "|| true" not in text


def test_recipes_print_pass_and_fail_with_a_reason() -> None:
    lib = (hooks_dir() / "payload" / "recipes" / "_lib.sh").read_text()
    assert "PASS" in lib and "FAIL: %s" in lib
    for recipe in RECIPES:
        if recipe.name == "_lib.sh":
            continue
        text = recipe.read_text()
        assert text.rstrip().endswith("pass"), recipe.name
        assert "source " in text and "_lib.sh" in text
        # The lab documentation's bug: reading $? under set -e never sees a failure.
        assert "$?" not in text, recipe.name


def test_recipes_inject_only_device_errors_zinject_accepts() -> None:
    # `zinject -d` takes io, nxio or corrupt; checksum is refused ("device error type must
    # be 'io', 'nxio' or 'corrupt'", 2.2-2.4), found on a real Debian 2.3.9 boot.
    for recipe in RECIPES:
        for line in recipe.read_text().splitlines():
            if "inject -d" in line:
                assert "-e checksum" not in line, f"{recipe.name}: {line.strip()}"
