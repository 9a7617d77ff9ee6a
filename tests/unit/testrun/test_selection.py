"""What a test run runs, checked on the host before any clone is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.spec.loader import load_distro
from imagefactory.testrun.guest import COLLECT_MARGIN, guest_environment, runner_hook
from imagefactory.testrun.resolve import check_selection
from imagefactory.testrun.selection import (
    Recipe,
    Selection,
    installed_recipes,
    parse_selection,
    rerun_selection,
)
from imagefactory.vm.payload import unpack


def test_exactly_one_kind_of_selection() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        parse_selection()
    with pytest.raises(UsageError, match=r"got --run, --suite"):
        parse_selection(run=["a/b"], suite="quick")


def test_tests_are_named_as_in_the_runfiles_whatever_the_spelling() -> None:
    selection = parse_selection(
        run=[
            "tests/functional/cli_root/zpool_create/zpool_create_001_pos.ksh",
            "cli_root/zpool_create/zpool_create_001_pos,atime/atime_001_pos",
            "zpool_create_002_pos",
        ]
    )

    assert selection.items == (
        "cli_root/zpool_create/zpool_create_001_pos",
        "atime/atime_001_pos",
        "zpool_create_002_pos",
    )
    assert selection.canonical == (
        "run=cli_root/zpool_create/zpool_create_001_pos,atime/atime_001_pos,zpool_create_002_pos"
    )
    assert selection.runfiles == ("common.run", "linux.run")


@pytest.mark.parametrize("bad", ["a b", "x;rm -rf /", "../etc/passwd", "a/../b", "$(x)"])
def test_names_that_could_escape_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_selection(run=[bad])
    with pytest.raises(UsageError):
        parse_selection(group=[bad])


@pytest.mark.parametrize(
    ("suite", "runfiles"),
    [("quick", ("quick.run",)), ("linux", ("common.run", "linux.run")),
     ("linux-fault", ("linux-fault.run",))],
)  # fmt: skip
def test_suites_map_to_their_runfiles(suite: str, runfiles: tuple[str, ...]) -> None:
    selection = parse_selection(suite=suite)
    assert selection.runfiles == runfiles
    assert selection.canonical == f"suite={suite}"


def test_an_unknown_suite_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown suite"):
        parse_selection(suite="everything")


def test_a_suite_the_spec_does_not_offer_is_a_usage_error() -> None:
    resolved = load_distro("debian13", lineage="ztest")
    narrowed = resolved.spec.model_copy(
        update={"test": resolved.spec.test.model_copy(update={"runfiles": ["quick"]})}
    )
    spec = type(resolved)(narrowed, resolved.path, resolved.lineage, False)

    check_selection([spec], parse_selection(suite="quick"))
    with pytest.raises(UsageError, match="does not offer the linux suite"):
        check_selection([spec], parse_selection(suite="linux"))


def test_recipes_are_host_files_or_the_goldens_own(tmp_path: Path) -> None:
    script = tmp_path / "my-check.sh"
    script.write_text("exit 0\n")

    selection = parse_selection(recipe=[str(script), "pool-corruption-block"])

    assert selection.mode == "recipe"
    assert selection.recipes == (
        Recipe("my-check", script.resolve()),
        Recipe("pool-corruption-block", None),
    )
    assert "pool-corruption-block" in installed_recipes()
    with pytest.raises(UsageError, match="no such recipe"):
        parse_selection(recipe=["not-a-recipe"])
    with pytest.raises(UsageError, match="share a name"):
        parse_selection(recipe=[str(script), str(script)])


def test_a_rerun_remembers_which_run_it_repeats() -> None:
    selection = rerun_selection(["a/b", "a/b", "c/d"], "20260101T000000Z-abc")
    assert selection.items == ("a/b", "c/d")
    assert selection.canonical == "rerun-failed=20260101T000000Z-abc"


def test_the_hook_carries_the_selector_the_tests_and_sent_recipes(tmp_path: Path) -> None:
    resolved = load_distro("debian13", lineage="ztest")
    script = tmp_path / "check.sh"
    script.write_text("#!/bin/sh\nexit 0\n")

    run = runner_hook(resolved, parse_selection(run=["a/b", "c/d"]), 600)
    recipes = runner_hook(resolved, parse_selection(recipe=[str(script), "arc-pressure"]), 60)

    files = unpack(run.content)
    assert set(files) >= {"select_tests.py", "tests.txt"}
    assert files["tests.txt"] == b"a/b\nc/d\n"
    assert run.timeout == 600 + COLLECT_MARGIN
    assert run.env["KLAB_TEST_MODE"] == "zts"
    assert run.env["KLAB_TEST_RUNFILES"] == "common.run,linux.run"
    assert run.env["KLAB_TEST_USER"] == "zfs"
    assert unpack(recipes.content)["recipes/check"] == script.read_bytes()
    assert recipes.env["KLAB_TEST_RECIPES"] == "check,arc-pressure"


def test_groups_and_suites_reach_the_guest_as_environment() -> None:
    resolved = load_distro("debian13", lineage="ztest")

    groups = guest_environment(resolved, parse_selection(group=["cli_root,arc"]), 100)
    suite = guest_environment(resolved, Selection("suite", ("linux-fault",)), 100.4)

    assert groups["KLAB_TEST_GROUPS"] == "cli_root,arc"
    assert "KLAB_TEST_GROUPS" not in suite
    assert suite["KLAB_TEST_RUNFILES"] == "linux-fault.run"
    assert suite["KLAB_TEST_TIMEOUT"] == "100"
