"""The ztest hooks' one package installer (_lib.sh): one apt policy, dnf for EL and Fedora.

Run in plan mode (the commands are printed, none run; every package counts as missing, as
on a fresh image), straight from the library the hooks inline.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from imagefactory.paths import hooks_dir

LIB = hooks_dir() / "ztest" / "_lib.sh"
APT = "apt-get -o DPkg::Lock::Timeout=600"
APT_INSTALL = f"{APT} install -y --no-install-recommends"


def run_lib(family: str, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; . "$1"; {script}', "hook", str(LIB)],
        env={"PATH": "/usr/bin:/bin", "KLAB_PLAN": "1", "KLAB_FAMILY": family},
        capture_output=True,
        text=True,
        check=False,
    )


def printed(family: str, script: str) -> list[str]:
    proc = run_lib(family, script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("family", ["debian", "ubuntu"])
def test_apt_refreshes_its_lists_once_per_hook_and_again_after_a_new_component(
    family: str,
) -> None:
    lines = printed(
        family,
        "install_packages ksh fio; install_packages jq; enable_component contrib;"
        " install_packages zfs-dkms",
    )
    assert [line for line in lines if not line.startswith("+ sed ")] == [
        f"+ {APT} update",
        f"+ {APT_INSTALL} ksh fio",
        f"+ {APT_INSTALL} jq",
        f"+ {APT} update",
        f"+ {APT_INSTALL} zfs-dkms",
    ]


@pytest.mark.parametrize("family", ["el", "fedora"])
def test_el_and_fedora_install_with_dnf(family: str) -> None:
    lines = printed(
        family,
        "install_packages ksh fio; install_rpm_from zfs-release https://example.invalid/r.rpm",
    )
    assert lines == [
        "+ dnf -y install ksh fio",
        "+ dnf -y install https://example.invalid/r.rpm",
    ]


def test_nothing_to_install_runs_nothing() -> None:
    assert printed("debian", "install_packages") == []


def test_an_unknown_family_fails_the_hook_with_its_name() -> None:
    proc = run_lib("gentoo", "install_packages ksh")
    assert proc.returncode == 1
    assert proc.stderr == "hook: error: unknown family gentoo\n"


# A package-manager install or refresh written anywhere but the library.
_INSTALLER = re.compile(r"\b(dnf\b[^\n]*\binstall|apt-get\b[^\n]*\b(install|update)\b)")


@pytest.mark.parametrize(
    "hook",
    sorted(p for p in (hooks_dir() / "ztest").glob("*.sh") if p.name != "_lib.sh"),
    ids=lambda p: p.name,
)
def test_no_hook_writes_its_own_installer(hook: Path) -> None:
    for number, line in enumerate(hook.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        # `apt-get -s` only simulates (10-zfs.sh asks whether zfs-dkms would come along).
        if _INSTALLER.search(code) and "apt-get -s " not in code:
            raise AssertionError(f"{hook}:{number}: {line.strip()}")
