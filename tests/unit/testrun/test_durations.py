"""Durations snapshots: exported from a real history, read back, hostile files refused.

The reader is a parser of outside text (a file another machine of a CI matrix wrote): every
hypothesis case runs in a forked child under a generous time and memory cap
(tests/fixtures/capped.py) and must end in a snapshot or one `DurationsError`, never another
exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.testrun.durations import (
    Durations,
    DurationsError,
    from_history,
    load_snapshot,
    parse_snapshot,
    write_snapshot,
)
from imagefactory.testrun.results import TestResult
from tests.fixtures.capped import run_capped
from tests.unit.testrun.history_builder import HistoryBuilder, t


def build_history(path: Path) -> None:
    with HistoryBuilder.create(path) as b:
        for i, seconds in enumerate((10.0, 12.0, 30.0)):
            setup = TestResult("atime/setup", "PASS", duration_s=1.0, identifier="Linux")
            b.run(
                f"r{i}",
                {
                    "debian13": [t("atime/atime_001_pos", s=seconds), setup],
                    "fedora44": [
                        t("atime/atime_001_pos", s=seconds * 2),
                        t("zil/slow", "KILLED", s=600),
                    ],
                },
            )


def test_medians_from_the_history_overall_and_per_distro(tmp_path: Path) -> None:
    build_history(tmp_path / "h.sqlite")
    from imagefactory.testrun.history import History

    with History.open(tmp_path / "h.sqlite", readonly=True) as history:
        durations = from_history(history.conn, last=10)
        only_two = from_history(history.conn, last=2)
    assert durations.runs == 3
    assert durations.distros["debian13"]["atime/atime_001_pos"] == 12.0
    assert durations.distros["fedora44"]["atime/atime_001_pos"] == 24.0
    assert durations.tests["atime/atime_001_pos"] == 22.0  # median of 10, 12, 20, 24, 30, 60
    assert durations.tests["atime/setup (Linux)"] == 1.0
    assert durations.tests["zil/slow"] == 600.0  # a KILLED test costs its time too
    assert only_two.distros["debian13"]["atime/atime_001_pos"] == 21.0  # 12 and 30
    assert durations.for_distro("debian13")["zil/slow"] == 600.0  # overall fills the gaps


def test_a_written_snapshot_reads_back_with_the_same_digest(tmp_path: Path) -> None:
    build_history(tmp_path / "h.sqlite")
    from imagefactory.testrun.history import History

    with History.open(tmp_path / "h.sqlite", readonly=True) as history:
        durations = from_history(history.conn)
    write_snapshot(durations, tmp_path / "d.json")
    again = load_snapshot(tmp_path / "d.json")
    assert again.digest == durations.digest
    assert again.tests == durations.tests
    assert json.loads((tmp_path / "d.json").read_text())["digest"] == durations.digest


def test_the_digest_ignores_creation_time_and_order() -> None:
    one = Durations({"a/x": 1.0, "b/y": 2.0}, {}, created="2026-01-01")
    two = Durations({"b/y": 2.0, "a/x": 1.0}, {}, created="2026-12-01")
    assert one.digest == two.digest
    assert one.digest != Durations({"a/x": 1.5, "b/y": 2.0}).digest


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a klab durations snapshot"),
        (b'{"kind": "klab-durations", "format": 2}', "format 2"),
        (b'{"kind": "klab-durations", "format": 1, "tests": {"a/x": -1}}', "out of range"),
        (b'{"kind": "klab-durations", "format": 1, "tests": {"a/x": "9"}}', "not a number"),
        (b'{"kind": "klab-durations", "format": 1, "tests": {"../x y": 1}}', "not a test name"),
        (b'{"kind": "klab-durations", "format": 1, "distros": {"-x": {}}}', "not a distro"),
        (
            b'{"kind": "klab-durations", "format": 1, "tests": {"a/x": 1}, "digest": "sha256:'
            + b"0" * 64
            + b'"}',
            "does not match",
        ),
    ],
)
def test_bad_files_are_one_line_usage_errors(text: bytes, message: str) -> None:
    with pytest.raises(DurationsError, match=message) as caught:
        parse_snapshot(text, "d.json")
    assert "\n" not in str(caught.value)
    assert caught.value.exit_status == 2


def test_a_missing_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DurationsError, match=r"--durations .*nope.json: no such file"):
        load_snapshot(tmp_path / "nope.json")


def _parse_or_refuse(data: bytes) -> None:
    try:
        durations = parse_snapshot(data)
    except DurationsError as exc:
        assert "\n" not in str(exc)
        return
    assert durations.digest.startswith("sha256:")


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    run_capped(_parse_or_refuse, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tests=st.dictionaries(st.text(max_size=30), _values, max_size=6),
    distros=_values,
    runs=_values,
    digest=_values,
)
def test_snapshot_shaped_json_never_raises_anything_else(
    tests: object, distros: object, runs: object, digest: object
) -> None:
    document = {
        "kind": "klab-durations",
        "format": 1,
        "tests": tests,
        "distros": distros,
        "runs": runs,
        "digest": digest,
    }
    run_capped(_parse_or_refuse, json.dumps(document).encode())


def test_deeply_nested_json_is_refused_not_a_crash() -> None:
    run_capped(_parse_or_refuse, b"[" * 100_000 + b"]" * 100_000)
