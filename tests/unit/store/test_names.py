"""The naming scheme: what is ours, what is not, and that names cannot escape the root."""

from __future__ import annotations

import pytest

from imagefactory.errors import UsageError
from imagefactory.store.names import (
    ParsedName,
    build_child,
    clone_child,
    new_clone_id,
    parse_child,
    retired_child,
    unique_retired_child,
)


@pytest.mark.parametrize(
    ("child", "parsed"),
    [
        ("klab-ztest-fedora", ParsedName("klab-ztest-fedora", "golden", "")),
        ("klab-ztest-fedora-pr-12345", ParsedName("klab-ztest-fedora-pr-12345", "golden", "")),
        ("klab-golden-debian.build-20260521T1422Z-ab", ParsedName(
            "klab-golden-debian", "build", "20260521T1422Z-ab")),
        ("klab-ztest-rocky.retired-20260521T142233Z-2", ParsedName(
            "klab-ztest-rocky", "retired", "20260521T142233Z-2")),
        ("klab-ztest-ubuntu.clone-run_7", ParsedName("klab-ztest-ubuntu", "clone", "run_7")),
    ],
)  # fmt: skip
def test_names_round_trip(child: str, parsed: ParsedName) -> None:
    assert parse_child(child) == parsed
    assert parsed.child == child


@pytest.mark.parametrize(
    "child",
    [
        "",
        "..",
        ".hidden",
        "a/b",
        "pool/vms",
        "leaf@golden",
        "leaf.snapshot-1",
        "leaf.build-",
        "leaf.build-a.b",
        "leaf.clone-../x",
        "-leaf",
        "leaf name",
        "x" * 101,
    ],
)
def test_names_outside_the_scheme_are_not_ours(child: str) -> None:
    assert parse_child(child) is None


def test_builders_refuse_what_the_parser_would_not_accept() -> None:
    for bad in ("a/b", "..", "a.b", "", "x@y", "a b"):
        with pytest.raises(UsageError):
            build_child(bad, "1")
        with pytest.raises(UsageError):
            clone_child("leaf", bad)
    assert retired_child("leaf", "20260101T000000Z") == "leaf.retired-20260101T000000Z"


def test_generated_ids_parse_and_differ() -> None:
    ids = {new_clone_id() for _ in range(50)}
    assert len(ids) == 50
    for ident in ids:
        assert parse_child(clone_child("leaf", ident)) is not None


def test_retired_names_stay_unique_within_one_second() -> None:
    first = unique_retired_child("leaf", set())
    second = unique_retired_child("leaf", {first})
    third = unique_retired_child("leaf", {first, second})
    assert len({first, second, third}) == 3
    assert second == f"{first}-2" and third == f"{first}-3"
