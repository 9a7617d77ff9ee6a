"""The bpftrace scripts compile, report periodically and end cleanly on Ctrl-C.

`bpftrace --emit-elf` parses, checks and compiles a script without attaching anything, so
it runs on a host without ZFS (kprobes on zfs.ko functions only warn there).  Whether the
probes attach is only known on a guest with the module loaded (the Debian end-to-end run).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from imagefactory.paths import hooks_dir

SCRIPTS = sorted((hooks_dir() / "payload" / "zfs-bt").glob("*.bt"))


def test_the_four_scripts_exist() -> None:
    assert [p.name for p in SCRIPTS] == ["arc.bt", "spl.bt", "txg.bt", "zio.bt"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_compiles(script: Path, tmp_path: Path) -> None:
    bpftrace = shutil.which("bpftrace")
    if bpftrace is None:
        pytest.skip("bpftrace is not installed on this host (apt-get install bpftrace)")
    elf = tmp_path / "out.elf"
    proc = subprocess.run(
        [bpftrace, "--emit-elf", elf, script], capture_output=True, text=True, check=False
    )
    errors = [
        line
        for line in proc.stderr.splitlines()
        # Unprivileged or container hosts cannot raise RLIMIT_MEMLOCK; compiling needs none.
        if "ERROR" in line and "RLIMIT_MEMLOCK" not in line
    ]
    assert proc.returncode == 0 and not errors, proc.stderr
    assert elf.stat().st_size > 0


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_reports_periodically_and_cleans_up_at_exit(script: Path) -> None:
    text = script.read_text()
    assert re.search(r"^interval:s:\d+$", text, re.MULTILINE)
    end = text[text.index("\nEND\n") :]
    # Every map the script fills is cleared at END, so Ctrl-C prints the summary only.
    maps = set(re.findall(r"(@[a-z_]+)\[?[^=\n]*\]? = ", text))
    for name in maps:
        assert f"clear({name})" in end, f"{script.name}: {name} is not cleared at END"
