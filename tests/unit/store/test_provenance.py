"""Provenance: what is recorded, and that nothing unstorable gets in."""

from __future__ import annotations

import pytest

from imagefactory import __version__
from imagefactory.errors import UsageError
from imagefactory.store.base import Provenance


def test_fields_are_those_the_store_records() -> None:
    assert Provenance.field_names() == (
        "distro",
        "lineage",
        "build_id",
        "built_at",
        "role",
        "zfs_version",
        "suite_version",
        "source_digest",
        "spec_digest",
        "hooks_digest",
        "inventory_digest",
        "identity",
        "guest_facts",
        "tool_version",
    )


def test_properties_round_trip_and_omit_unknown_values() -> None:
    p = Provenance(distro="rocky9", lineage="ztest", build_id="b1", zfs_version="2.2.9")
    props = p.to_properties()
    assert "suite_version" not in props and props["role"] == "golden"
    assert props["tool_version"] == __version__
    assert props["built_at"].endswith("Z")
    assert Provenance.from_properties(props) == p


@pytest.mark.parametrize("value", ["two\nlines", "tab\there", "x" * 1025, "nul\0"])
def test_values_that_would_break_zfs_get_output_are_refused(value: str) -> None:
    with pytest.raises(UsageError, match="not storable"):
        Provenance(distro=value, lineage="l", build_id="b")


def test_every_field_round_trips_and_a_missing_one_reads_as_unknown() -> None:
    values = {name: f"value-of-{name}" for name in Provenance.field_names()}
    values.update(lineage="ztest", build_id="b1", role="retired")
    p = Provenance(**values)
    assert Provenance.from_properties(p.to_properties()) == p
    bare = Provenance.from_properties({})
    assert (bare.distro, bare.build_id, bare.built_at, bare.role) == ("", "", "", "golden")
    assert all(
        getattr(bare, name) is None
        for name in Provenance.field_names()
        if name not in {"distro", "lineage", "build_id", "built_at", "role"}
    )
