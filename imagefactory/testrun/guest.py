"""The one hook a test clone runs, with what it needs from the host appended to it.

The in-guest runner is hooks/testrun/50-klab-test.sh.  Its inputs travel the way the build's
payload does (imagefactory.vm.payload): a base64 tar.gz after a marker line at the end of
the script, so the seed carries everything and nothing else has to reach the guest.  The
inputs are the test selector (select_tests.py), the list of tests, and recipe files sent
from the host.  The list of tests is what the host resolved against the golden's suite
inventory (full paths: testrun/resolve.py) -- for --group too -- or, for a golden without
one, the --run names as typed; with it, the names the inventory lacks (absent.txt), which the
guest's selection.json reports as absent like those its own selector leaves out.  Everything
else is environment: the spec's KLAB_* facts
plus the selection, the retries and the time allowed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imagefactory.paths import hooks_dir
from imagefactory.spec.hookenv import hook_environment
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.testrun.results_disk import SERIAL
from imagefactory.testrun.selection import Selection
from imagefactory.vm.hookplan import Hook
from imagefactory.vm.payload import append_archive, pack_directory

RUNNER = "testrun/50-klab-test.sh"
SELECTOR = "testrun/select_tests.py"
COLLECT_MARGIN = 900.0
"""Seconds the hook gets beyond the tests: stop bpftrace, copy, pack, write the disk."""


def guest_environment(
    resolved: ResolvedSpec,
    selection: Selection,
    timeout: float,
    *,
    tests: Sequence[str] | None = None,
    retries: int = 0,
) -> dict[str, str]:
    """`tests`: the host's resolution of --run/--group (then the guest gets no groups)."""
    env = hook_environment(resolved)
    env.update(
        {
            "KLAB_TEST_MODE": selection.mode,
            "KLAB_TEST_TIMEOUT": str(max(1, round(timeout))),
            "KLAB_TEST_RETRIES": str(retries),
            "KLAB_RESULTS_SERIAL": SERIAL,
        }
    )
    if selection.mode == "zts":
        env["KLAB_TEST_RUNFILES"] = ",".join(selection.runfiles)
        if selection.kind == "group" and tests is None:
            env["KLAB_TEST_GROUPS"] = ",".join(selection.items)
    else:
        env["KLAB_TEST_RECIPES"] = ",".join(selection.items)
    return env


def write_inputs(
    selection: Selection,
    directory: Path,
    *,
    tests: Sequence[str] | None = None,
    absent: Sequence[str] = (),
    hooks_root: Path | None = None,
) -> None:
    """The files the runner unpacks next to itself."""
    root = hooks_root if hooks_root is not None else hooks_dir()
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / SELECTOR, directory / "select_tests.py")
    if tests is None and selection.kind == "run":
        tests = selection.items
    if tests is not None:
        (directory / "tests.txt").write_text("".join(f"{t}\n" for t in tests))
    if absent:
        (directory / "absent.txt").write_text("".join(f"{t}\n" for t in absent))
    sent = [r for r in selection.recipes if r.source is not None]
    if sent:
        (directory / "recipes").mkdir()
        for recipe in sent:
            assert recipe.source is not None
            target = directory / "recipes" / recipe.name
            shutil.copyfile(recipe.source, target)
            target.chmod(0o755)


def runner_hook(
    resolved: ResolvedSpec,
    selection: Selection,
    timeout: float,
    *,
    tests: Sequence[str] | None = None,
    absent: Sequence[str] = (),
    retries: int = 0,
    hooks_root: Path | None = None,
) -> Hook:
    """The runner with its inputs appended; the hook's limit is the tests' plus collection.

    Retries run within `timeout` (the guest's deadline), so they need no extra allowance.
    """
    root = hooks_root if hooks_root is not None else hooks_dir()
    script = (root / RUNNER).read_bytes()
    with tempfile.TemporaryDirectory(prefix="klab-test-inputs-") as tmp:
        write_inputs(selection, Path(tmp), tests=tests, absent=absent, hooks_root=root)
        archive = pack_directory(Path(tmp))
    return Hook(
        name=Path(RUNNER).name,
        content=append_archive(script, archive),
        timeout=timeout + COLLECT_MARGIN,
        env=guest_environment(resolved, selection, timeout, tests=tests, retries=retries),
        source=root / RUNNER,
    )
