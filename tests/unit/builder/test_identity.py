"""A golden's identity: its one-line record survives the provenance (at most 1024 printable
characters, parsed back whatever a store hands over), and a change is named by its file."""

from __future__ import annotations

import dataclasses
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.builder.identity import (
    RECORD_MAX,
    Identity,
    golden_identity,
    what_changed,
)
from imagefactory.spec.loader import load_distro
from imagefactory.store.base import Provenance
from imagefactory.vm.fromspec import hook_plan
from tests.fixtures.capped import run_capped

SOURCE = "sha512:" + "ab" * 64


def ztest_identity(zfs_commit: str | None = None) -> Identity:
    resolved = load_distro("debian13", lineage="ztest", env={})
    resolved = dataclasses.replace(resolved, zfs_commit=zfs_commit)
    return golden_identity(resolved, hook_plan(resolved), source_digest=SOURCE, bootstrapped=True)


def provenance_of(identity: Identity, build_id: str = "b1") -> Provenance:
    """What the build records: the identity and the provenance fields it does not repeat."""
    return Provenance(
        distro="debian13",
        lineage="ztest",
        build_id=build_id,
        spec_digest=identity.values["spec"],
        source_digest=identity.values["source"],
        hooks_digest=identity.values["hooks"],
        tool_version=identity.values["version"],
        identity=identity.record(),
    )


def recorded(identity: Identity) -> Identity:
    read = Identity.of_golden(provenance_of(identity))
    assert read is not None
    return read


def test_the_record_of_a_real_ztest_golden_fits_a_provenance_and_reads_back() -> None:
    # A PR build's (the longest record): every file still named on its own.
    identity = ztest_identity(zfs_commit="9" * 40)
    assert len(identity.record()) <= RECORD_MAX
    parsed = recorded(identity)
    assert not [path for path in parsed.files if path.endswith("/*")]
    assert parsed.digest == identity.digest
    assert parsed.values == identity.values
    # Every input file is named in it: hooks, libraries, payloads, runner, fragments, recipe.
    for name in (
        "hooks/ztest/10-zfs.sh",
        "hooks/ztest/_lib.sh",
        "hooks/payload/runfiles/quick.run",
        "hooks/ztest/inventory/suite_inventory.py",
        "hooks/runner/run-hooks.sh",
        "cloud-init/base.yaml",
        "imagefactory/fetch/bootstrap_hooks/customize.sh",
    ):
        assert name in parsed.files, name
    assert what_changed(parsed, identity, build_id="b1") == []


def changed(identity: Identity, path: str) -> Identity:
    files = {**identity.files, path: "f" * 64}
    return Identity("sha256:" + "0" * 64, identity.values, files)


def test_a_changed_file_is_named_with_the_build_it_differs_from() -> None:
    built = recorded(ztest_identity())
    now = changed(ztest_identity(), "hooks/ztest/10-zfs.sh")
    assert what_changed(built, now, build_id="20261202T2100-abc") == [
        "hooks/ztest/10-zfs.sh changed since build 20261202T2100-abc"
    ]


def test_new_and_removed_inputs_values_and_the_zfs_commit_are_named() -> None:
    base = ztest_identity()
    built = Identity(base.digest, {**base.values, "zfs": "1" * 40}, base.files)
    files = {k: v for k, v in base.files.items() if k != "hooks/ztest/50-vdevs.sh"}
    files["hooks/ztest/55-new.sh"] = "e" * 64
    values = {**base.values, "zfs": "2" * 40, "version": "9.9"}
    now = Identity("sha256:" + "1" * 64, values, files)
    reasons = what_changed(recorded(built), now, build_id="b7")
    assert f"imagefactory is 9.9, was {base.values['version']} since build b7" in reasons
    assert "the ZFS source branch is at 222222222222 (was 111111111111) since build b7" in reasons
    assert "hooks/ztest/50-vdevs.sh is no longer an input since build b7" in reasons
    assert "hooks/ztest/55-new.sh is a new input since build b7" in reasons


def test_a_golden_without_an_identity_is_due_and_says_why() -> None:
    assert what_changed(None, ztest_identity(), build_id="b0") == [
        "build b0 was made before identities were recorded: its inputs are unknown"
    ]
    assert Identity.parse(None) is None and Identity.parse("") is None
    assert Identity.parse("v0 id=sha256:00") is None  # another format: unknown, not a crash


def test_a_tree_too_big_for_one_line_is_recorded_by_directory() -> None:
    files = {f"hooks/payload/recipes/recipe-{i:03}.sh": f"{i:064x}" for i in range(120)}
    files.update({f"hooks/ztest/{i:02}-hook.sh": f"{i:064x}" for i in range(10, 20)})
    files["hooks/ztest/10-zfs.sh"] = "a" * 64
    identity = Identity("sha256:" + "a" * 64, {"zfs": "c" * 40}, files)
    record = identity.record()
    assert len(record) <= RECORD_MAX
    built = Identity.parse(record)
    assert built is not None and "hooks/payload/recipes/*" in built.files
    assert "hooks/ztest/10-zfs.sh" in built.files  # small directories stay per file
    now = changed(identity, "hooks/payload/recipes/recipe-042.sh")
    assert what_changed(built, now, build_id="b") == [
        "a file in hooks/payload/recipes/ changed since build b"
    ]
    assert what_changed(built, changed(identity, "hooks/ztest/10-zfs.sh"), build_id="b") == [
        "hooks/ztest/10-zfs.sh changed since build b"
    ]


def parse_anything(text: str) -> None:
    parsed = Identity.parse(text)
    if parsed is not None:
        assert parsed.digest
        what_changed(parsed, ztest_identity(), build_id="x")


PIECES = st.sampled_from(["v1", "id=sha256:", "spec=", "hooks/ztest/=", ":", ",", "=", " ", "*"])


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=2000),
        st.lists(st.one_of(PIECES, st.text(string.printable, max_size=12)), max_size=80).map(
            "".join
        ),
    )
)
def test_any_stored_text_parses_or_reads_as_unknown_never_a_traceback(text: str) -> None:
    run_capped(parse_anything, text)


def test_file_names_with_the_records_separators_survive_it() -> None:
    odd = "hooks/payload/recipes/my recipe, v2:=%.sh"
    identity = Identity(
        "sha256:" + "b" * 64, {}, {odd: "d" * 64, "hooks/ztest/10-zfs.sh": "a" * 64}
    )
    built = Identity.parse(identity.record())
    assert built is not None and set(built.files) == set(identity.files)
    assert what_changed(built, changed(identity, odd), build_id="b") == [
        f"{odd} changed since build b"
    ]
