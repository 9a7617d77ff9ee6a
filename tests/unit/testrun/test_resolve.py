"""`--run` and `--group` resolved on the host against real suites' inventories."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imagefactory.errors import UsageError
from imagefactory.paths import hooks_dir
from imagefactory.testrun.inventory import Inventory, parse_inventory
from imagefactory.testrun.resolve import (
    DistroTests,
    find_test,
    group_tests,
    resolve_selection,
    suggest,
)
from imagefactory.testrun.selection import UPSTREAM_RUNFILES, parse_selection, rerun_selection
from tests.unit.testrun.fake_suite import make_real_shape

WRITER = hooks_dir() / "ztest" / "inventory" / "suite_inventory.py"
ZPOOL_CREATE = "cli_root/zpool_create/zpool_create_001_pos"


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    """The inventory a Debian 13 golden (OpenZFS 2.3.9) carries."""
    root = tmp_path_factory.mktemp("suite")
    shape = make_real_shape(root)
    out = root / "inventory.json"
    subprocess.run(
        [sys.executable, str(WRITER), "--suite-dir", str(shape.suite), "--runfile-dir",
         str(shape.runfiles), "--suite-version", "2.3.9-0+deb13u1", "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return parse_inventory(out.read_bytes())


def older(real: Inventory, without: set[str]) -> Inventory:
    """The same suite minus some tests: an older release."""
    tests = {n: dict(v) for n, v in real.tests.items() if n not in without}
    by_base: dict[str, tuple[str, ...]] = {}
    for name in tests:
        base = name.rsplit("/", 1)[-1]
        by_base[base] = (*by_base.get(base, ()), name)
    return Inventory("sha256:" + "0" * 64, "2.2.2-0ubuntu9", real.runfiles, tests, by_base=by_base)


@pytest.mark.parametrize(
    "spelling",
    [
        ZPOOL_CREATE,
        "cli_root/zpool_create_001_pos",  # the documented short form
        "zpool_create/zpool_create_001_pos",  # trailing directories
        "zpool_create_001_pos",  # the bare test name
        "tests/functional/cli_root/zpool_create/zpool_create_001_pos.ksh",
    ],
)
def test_every_documented_spelling_resolves_to_the_full_path(
    real: Inventory, spelling: str
) -> None:
    selection = parse_selection(run=[spelling])

    plans = resolve_selection(selection, {"debian13": real})

    assert plans["debian13"] == DistroTests((ZPOOL_CREATE,), (), "2.3.9-0+deb13u1")
    assert selection.canonical.startswith("run=")  # what the user asked stays the label


def test_a_name_of_two_tests_is_ambiguous_and_lists_both(real: Inventory) -> None:
    assert find_test(real, "zfs_001_neg") == (
        "cli_root/zfs/zfs_001_neg",
        "cli_user/misc/zfs_001_neg",
    )
    with pytest.raises(UsageError) as caught:
        resolve_selection(parse_selection(run=["zfs_001_neg"]), {"debian13": real})

    message = str(caught.value)
    assert "--run zfs_001_neg is ambiguous" in message
    assert "cli_root/zfs/zfs_001_neg, cli_user/misc/zfs_001_neg" in message
    # The short form picks one.
    plans = resolve_selection(parse_selection(run=["cli_user/zfs_001_neg"]), {"d": real})
    assert plans["d"].tests == ("cli_user/misc/zfs_001_neg",)


def test_an_unknown_name_is_a_usage_error_with_suggestions(real: Inventory) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_selection(parse_selection(run=["cli_root/zpool_create_01_pos"]), {"debian13": real})

    message = str(caught.value)
    assert message.startswith(
        "--run cli_root/zpool_create_01_pos: no test of that name in debian13 "
        "(zfs-tests 2.3.9-0+deb13u1); did you mean "
    )
    assert ZPOOL_CREATE in message
    assert message.count(", ") <= 2  # three suggestions at most


def test_even_a_name_nothing_resembles_gets_suggestions(real: Inventory) -> None:
    close = suggest("no_such_test", [real])
    assert 1 <= len(close) <= 3
    assert all(c in real.tests for c in close)


def test_a_test_some_distros_lack_is_absent_there_and_runs_elsewhere(real: Inventory) -> None:
    new = "cli_root/zpool_scrub/zpool_scrub_txg_continue_from_last"
    old = older(real, {new})

    plans = resolve_selection(
        parse_selection(run=[ZPOOL_CREATE, "zpool_scrub_txg_continue_from_last"]),
        {"debian13": real, "ubuntu24": old},
    )

    assert plans["debian13"].tests == (ZPOOL_CREATE, new)  # unlisted, yet shipped: it runs
    assert plans["ubuntu24"] == DistroTests(
        (ZPOOL_CREATE,), ("zpool_scrub_txg_continue_from_last",), "2.2.2-0ubuntu9"
    )
    only_new = resolve_selection(parse_selection(run=[new]), {"d": real, "u": old})
    assert only_new["u"].tests == () and not only_new["u"].boots


def test_unknown_everywhere_is_an_error_but_a_golden_without_inventory_may_know_it(
    real: Inventory,
) -> None:
    selection = parse_selection(run=["no_such_test"])
    with pytest.raises(UsageError, match="no_such_test: no test of that name"):
        resolve_selection(selection, {"debian13": real, "fedora44": real})

    plans = resolve_selection(selection, {"debian13": real, "fedora44": None})

    assert plans["fedora44"] == DistroTests(None)  # its clone resolves, as before
    assert plans["fedora44"].boots
    assert plans["debian13"] == DistroTests((), ("no_such_test",), "2.3.9-0+deb13u1")


def test_groups_take_tags_directories_and_test_names(real: Inventory) -> None:
    by_tag = group_tests(real, "zpool_create", UPSTREAM_RUNFILES)
    by_dir = group_tests(real, "cli_root/zpool_create", UPSTREAM_RUNFILES)
    assert ZPOOL_CREATE in by_tag and set(by_tag) == set(by_dir)
    assert all(t.startswith("cli_root/zpool_create/") for t in by_tag)
    # A group is what common.run/linux.run list: never a test only on disk.
    assert "cli_root/zpool_scrub/zpool_scrub_txg_continue_from_last" not in group_tests(
        real, "cli_root", UPSTREAM_RUNFILES
    )

    plans = resolve_selection(
        parse_selection(group=["zpool_create_001_pos,cli_root/zpool_create_002_pos"]),
        {"debian13": real},
    )

    assert plans["debian13"].tests == (
        ZPOOL_CREATE,
        "cli_root/zpool_create/zpool_create_002_pos",
    )


def test_the_documented_encryption_group_example_fails_before_booting(real: Inventory) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_selection(
            parse_selection(group=["encryption_001_pos,encryption_002_pos"]), {"debian13": real}
        )

    message = str(caught.value)
    assert "--group encryption_001_pos: no test, tag or directory of that name" in message
    assert "--group encryption_002_pos:" in message
    assert "did you mean" in message


def test_suites_and_recipes_need_no_resolution(real: Inventory) -> None:
    assert resolve_selection(parse_selection(suite="quick"), {"d": real}) == {}


def test_the_rerun_of_failures_resolves_exactly(real: Inventory) -> None:
    plans = resolve_selection(rerun_selection([ZPOOL_CREATE], "r1"), {"d": real})
    assert plans["d"].tests == (ZPOOL_CREATE,)
