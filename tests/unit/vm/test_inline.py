"""Hook libraries are inlined when hooks are packed: once, in place, or a clear error."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import SpecError
from imagefactory.vm.hookplan import Hook
from imagefactory.vm.inline import DIRECTIVE

LOAD = '. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline\n'


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_library_replaces_the_line_and_the_hook_runs_without_it(tmp_path: Path) -> None:
    write(tmp_path / "_lib.sh", 'greet() { echo "hello from $1"; }\n')
    hook = write(tmp_path / "10-hi.sh", f"#!/usr/bin/env bash\nset -eu\n{LOAD}greet hook\n")
    # As it stands in the repository it works by loading the file...
    assert subprocess.run(["bash", hook], capture_output=True, text=True).stdout == (
        "hello from hook\n"
    )
    packed = Hook.from_file(hook, timeout=5).content
    assert DIRECTIVE.search(packed) is None
    # ...and packed it works alone, from a directory without the library.
    alone = tmp_path / "guest"
    alone.mkdir()
    (alone / "10-hi.sh").write_bytes(packed)
    proc = subprocess.run(["bash", alone / "10-hi.sh"], capture_output=True, text=True)
    assert proc.stdout == "hello from hook\n", proc.stderr


def test_a_hook_without_the_line_is_packed_unchanged(tmp_path: Path) -> None:
    text = "#!/usr/bin/env bash\n. ./other.sh\necho hi\n"
    hook = write(tmp_path / "10-hi.sh", text)
    assert Hook.from_file(hook, timeout=5).content == text.encode()


def test_a_missing_library_names_the_file(tmp_path: Path) -> None:
    hook = write(tmp_path / "10-hi.sh", f"#!/usr/bin/env bash\n{LOAD}")
    with pytest.raises(SpecError, match=r"cannot inline .*_lib\.sh"):
        Hook.from_file(hook, timeout=5)


def test_a_library_that_loads_another_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "_lib.sh", LOAD)
    hook = write(tmp_path / "10-hi.sh", f"#!/usr/bin/env bash\n{LOAD}")
    with pytest.raises(SpecError, match="one level only"):
        Hook.from_file(hook, timeout=5)
