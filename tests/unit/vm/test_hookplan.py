"""Hook plans: names, order, limits and environment are checked before anything boots."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.errors import SpecError, UsageError
from imagefactory.vm.hookplan import Hook, HookPlan


def hook(name: str, timeout: float = 10.0, **env: str) -> Hook:
    return Hook(name, b"#!/bin/bash\ntrue\n", timeout, env)


def test_hooks_run_in_the_order_of_their_number_prefix() -> None:
    plan = HookPlan.of([hook("30-c.sh"), hook("10-a.sh"), hook("20-b.sh")])
    assert plan.names == ["10-a.sh", "20-b.sh", "30-c.sh"]


def test_two_hooks_with_one_name_are_rejected() -> None:
    with pytest.raises(UsageError, match=r"two hooks are named 10-a\.sh"):
        HookPlan.of([hook("10-a.sh"), hook("10-a.sh")])


@pytest.mark.parametrize("name", ["a.sh", "1-a.sh", "10-a", "10-a b.sh", '10-"x".sh', "10-.sh"])
def test_hook_names_must_be_nn_name_sh(name: str) -> None:
    with pytest.raises(UsageError, match=r"NN-name\.sh"):
        hook(name)


def test_a_hook_timeout_must_be_positive() -> None:
    with pytest.raises(UsageError, match="timeout must be positive"):
        hook("10-a.sh", timeout=0)


def test_environment_names_and_values_are_checked() -> None:
    with pytest.raises(UsageError, match="invalid environment variable name"):
        Hook("10-a.sh", b"", 1.0, {"1X": "v"})
    with pytest.raises(UsageError, match="newline"):
        Hook("10-a.sh", b"", 1.0, {"X": "a\nb"})


def test_from_file_names_the_hook_after_the_script(tmp_path: Path) -> None:
    script = tmp_path / "family" / "20-zfs.sh"
    script.parent.mkdir()
    script.write_bytes(b"#!/bin/bash\necho zfs\n")
    loaded = Hook.from_file(script, timeout=60, env={"K": "v"})
    assert (loaded.name, loaded.content, loaded.timeout) == ("20-zfs.sh", script.read_bytes(), 60)
    assert loaded.env == {"K": "v"} and loaded.source == script


def test_a_missing_script_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read hook script"):
        Hook.from_file(tmp_path / "10-missing.sh", timeout=1)


def test_get_finds_a_hook_by_name() -> None:
    plan = HookPlan.of([hook("10-a.sh", 5), hook("20-b.sh", 7)])
    found = plan.get("20-b.sh")
    assert found is not None and found.timeout == 7
    assert plan.get("30-c.sh") is None
    assert len(plan) == 2


def test_the_digest_sees_a_library_change_that_the_spec_cannot(tmp_path: Path) -> None:
    """Stale goldens: editing `_lib.sh` must change what the build compares, not just the hook."""
    (tmp_path / "_lib.sh").write_text("say() { echo one; }\n")
    script = tmp_path / "10-a.sh"
    script.write_text('#!/bin/bash\n. "${BASH_SOURCE[0]%/*}/_lib.sh" # imagefactory: inline\nsay\n')
    before = HookPlan.of([Hook.from_file(script, timeout=5.0)]).digest(b"runner")
    assert HookPlan.of([Hook.from_file(script, timeout=5.0)]).digest(b"runner") == before
    (tmp_path / "_lib.sh").write_text("say() { echo two; }\n")
    after = HookPlan.of([Hook.from_file(script, timeout=5.0)]).digest(b"runner")
    assert after != before and after.startswith("sha256:")


def test_the_digest_covers_environment_timeout_and_the_runner() -> None:
    base = HookPlan.of([hook("10-a.sh", X="1")])
    assert HookPlan.of([hook("10-a.sh", X="2")]).digest() != base.digest()
    assert HookPlan.of([hook("10-a.sh", timeout=11.0, X="1")]).digest() != base.digest()
    assert base.digest(b"runner v2") != base.digest(b"runner v1")
