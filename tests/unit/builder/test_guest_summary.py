"""The guest facts `klab status` shows travel in the golden's provenance, and whatever a
store holds there reads back as known facts or as unknown, never as an exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from imagefactory.store.base import Provenance
from imagefactory.store.guest_facts import guest_summary, read_guest_summary
from tests.fixtures.capped import run_capped

# Each case runs in a capped child (tests/fixtures/capped.py): a hang or a bomb fails it.
PROPERTY = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
KEYS = {"ksh", "zfs_tests_sh", "vdevs", "vdev_count", "zfs_commit", "zfs_source"}

GOLDEN_JSON = {
    "zfs_version": "2.3.9-1",
    "suite_version": "2.3.9-1",
    "zfs_source": "https://github.com/openzfs/zfs",
    "zfs_commit": "0123456789abcdef0123456789abcdef01234567",
    "ksh": "/usr/bin/ksh",
    "zfs_tests_sh": "/usr/share/zfs/zfs-tests.sh",
    "vdevs": 8,
    "vdev_count": 8,
    "bpftrace": None,
    "tools_missing": [],
    "inventory_digest": "sha256:" + "0" * 64,
}


def test_a_ztest_guests_facts_round_trip_through_the_provenance() -> None:
    value = guest_summary(GOLDEN_JSON)
    assert value is not None
    stored = Provenance(distro="d", lineage="ztest", build_id="b1", guest_facts=value)
    back = Provenance.from_properties(stored.to_properties())
    assert read_guest_summary(back.guest_facts) == {
        "ksh": True,
        "zfs_tests_sh": True,
        "vdevs": 8,
        "vdev_count": 8,
        "zfs_commit": GOLDEN_JSON["zfs_commit"],
        "zfs_source": GOLDEN_JSON["zfs_source"],
    }


def test_a_missing_tool_is_recorded_as_missing() -> None:
    summary = read_guest_summary(guest_summary({**GOLDEN_JSON, "ksh": None}))
    assert summary["ksh"] is False and summary["zfs_tests_sh"] is True


def test_a_lean_golden_records_nothing() -> None:
    assert guest_summary({}) is None
    assert guest_summary({"test_marker": "debtest"}) is None
    assert read_guest_summary(None) == {}


def test_values_of_the_wrong_type_read_as_unknown() -> None:
    forged = json.dumps({"ksh": "yes", "vdevs": -1, "vdev_count": 2.5, "zfs_commit": 7})
    assert read_guest_summary(forged) == {}
    assert read_guest_summary("[1, 2]") == {}
    assert read_guest_summary("{") == {}


def read_any(text: str) -> None:
    assert set(read_guest_summary(text)) <= KEYS


@PROPERTY
@given(st.text(max_size=300))
@example("[" * 100_000)
@example('{"vdevs": ' + "9" * 5000 + "}")
@example('{"vdevs": 1e999999, "ksh": true}')
@example('{"zfs_commit": "a\\u0000b"}')
def test_any_stored_text_reads_without_raising(text: str) -> None:
    run_capped(read_any, text)


def store_any(facts: dict[str, object]) -> None:
    value = guest_summary(facts)
    if value is not None:
        Provenance(distro="d", lineage="ztest", build_id="b1", guest_facts=value)
        assert set(read_guest_summary(value)) <= KEYS


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(sorted(GOLDEN_JSON)),
        st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.text(), max_size=3),
    )
)
def test_any_guest_facts_give_a_storable_value(facts: dict[str, object]) -> None:
    run_capped(store_any, facts)
