"""Shards: `--shard i/N` parsing, sections from a real-format inventory, weights with unknowns.

`parse_shard` reads a command-line value and `read_run` a run.json from another machine:
both are parsers of outside text, so random and hostile input must end in their one-line
error (ValueError, UsageError), never anything else -- the run.json cases run in a forked
child under a generous time and memory cap (tests/fixtures/capped.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.errors import UsageError
from imagefactory.testrun.inventory import parse_inventory
from imagefactory.testrun.merge_inputs import read_run
from imagefactory.testrun.shard import ShardSpec, parse_shard, sections_of, weigh
from tests.fixtures.capped import run_capped


def inventory() -> object:
    def listed(section: str) -> dict[str, object]:
        return {"on_disk": True, "listed": {"quick.run": {"section": section, "tags": []}}}

    tests = {
        "atime/atime_001_pos": listed("tests/functional/atime"),
        "atime/atime_002_neg": listed("tests/functional/atime"),
        "atime/atime_003_pos": listed("tests/functional/atime:Linux"),
        "zil/zil_001": listed("tests/functional/zil"),
        "zil/unlisted": {"on_disk": True, "listed": {}},
        "trim/unlisted": {"on_disk": True, "listed": {}},
    }
    return parse_inventory(json.dumps({"format": 1, "tests": tests}).encode())


def test_sections_follow_the_runfile_and_unlisted_tests_join_their_directory() -> None:
    names = ["atime/atime_001_pos", "atime/atime_003_pos", "zil/unlisted", "zil/zil_001",
             "trim/unlisted", "atime/atime_002_neg"]  # fmt: skip
    found = {s.name: s.tests for s in sections_of(names, inventory(), ("quick.run",))}  # type: ignore[arg-type]
    assert found == {
        "tests/functional/atime": ("atime/atime_001_pos", "atime/atime_002_neg"),
        "tests/functional/atime:Linux": ("atime/atime_003_pos",),
        "tests/functional/zil": ("zil/unlisted", "zil/zil_001"),
        "tests/functional/trim": ("trim/unlisted",),
    }


def test_weights_count_setup_and_cleanup_and_fill_unknowns_with_medians() -> None:
    names = ["atime/atime_001_pos", "atime/atime_002_neg", "atime/atime_003_pos", "zil/zil_001"]
    sections = sections_of(names, inventory(), ("quick.run",))  # type: ignore[arg-type]
    seconds = {
        "atime/atime_001_pos": 10.0,
        "atime/atime_002_neg": 30.0,
        "atime/setup": 2.0,
        "atime/cleanup": 1.0,
        "atime/setup (Linux)": 4.0,
        "unrelated/test": 500.0,
    }
    weights, estimated = weigh(sections, seconds)
    assert not estimated
    assert weights["tests/functional/atime"] == 43_000  # 10 + 30 + setup 2 + cleanup 1
    # atime_003_pos unknown: median of the selection's known tests (20 s); its cleanup
    # unknown: median of the known setups and cleanups (2 s).
    assert weights["tests/functional/atime:Linux"] == 20_000 + 4_000 + 2_000
    assert weights["tests/functional/zil"] == 20_000 + 2_000 + 2_000


def test_with_nothing_known_every_test_weighs_the_same() -> None:
    names = ["atime/atime_001_pos", "atime/atime_002_neg", "zil/zil_001"]
    sections = sections_of(names, inventory(), ("quick.run",))  # type: ignore[arg-type]
    weights, estimated = weigh(sections, {})
    assert estimated
    assert weights == {"tests/functional/atime": 2000, "tests/functional/zil": 1000}


@given(st.integers(1, 256).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_valid_shard_parses(pair: tuple[int, int]) -> None:
    assert parse_shard(f"{pair[0]}/{pair[1]}") == ShardSpec(*pair)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_any_text_is_a_shard_or_a_one_line_value_error(text: str) -> None:
    try:
        spec = parse_shard(text)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 200
    else:
        assert 1 <= spec.index <= spec.count <= 256


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1/257", "1/2/3", "-1/2", "a/b", ""])
def test_bad_shards_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_shard(text)


def _read_or_refuse(directory: Path) -> None:
    try:
        read_run(directory)
    except UsageError as exc:
        assert "\n" not in str(exc)


def capped_examples(count: int) -> settings:
    """Hypothesis settings for cases that each run in a capped child (tmp_path is reused:
    each case writes the whole file it reads; a child start is slow, so no deadline)."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=15,
)


@capped_examples(100)
@given(data=st.binary(max_size=1000))
def test_random_run_json_bytes_are_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "run.json").write_bytes(data)
    run_capped(_read_or_refuse, tmp_path)


@capped_examples(150)
@given(distros=_json, shard=_json, run_id=_json, extra=_json)
def test_run_json_shaped_documents_are_read_or_refused(
    tmp_path: Path, distros: object, shard: object, run_id: object, extra: object
) -> None:
    document = {
        "run_id": run_id,
        "selection": "suite=quick",
        "distros": distros,
        "shard": shard,
        "merged_from": extra,
    }
    (tmp_path / "run.json").write_text(json.dumps(document))
    run_capped(_read_or_refuse, tmp_path)


@pytest.mark.parametrize(
    "shard",
    [
        {"index": 3, "count": 2, "selection": "suite=quick"},
        {
            "index": None,
            "count": 2,
            "selection": "s",
            "pieces": {"d": [{"index": 1, "run_id": "r", "status": "passed", "dir": "../../etc"}]},
        },
    ],
)
def test_forged_shards_and_piece_paths_are_refused(tmp_path: Path, shard: object) -> None:
    document = {
        "run_id": "r1",
        "selection": "suite=quick",
        "distros": [{"distro": "d", "status": "passed"}],
        "shard": shard,
    }
    (tmp_path / "run.json").write_text(json.dumps(document))
    with pytest.raises(UsageError):
        read_run(tmp_path)


def _trust_or_refuse(directory: Path, entry: dict[str, object]) -> None:
    from imagefactory.testrun.judged_record import trusted_outcome

    try:
        outcome, why = trusted_outcome(
            "run.json", entry, directory, baseline_digest=None, judged_with=None
        )
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert outcome is None or why is None  # an outcome is never given with a doubt


@capped_examples(150)
@given(judged=_json, tests=_json, context=_json, status=_json)
def test_hostile_judged_records_are_used_refused_or_judged_again(
    tmp_path: Path, judged: object, tests: object, context: object, status: object
) -> None:
    """run.json's judged record comes from another machine: any shape is a usage error or
    a reason to judge again, never a traceback (in a capped child)."""
    entry = {"distro": "debian13", "status": status, "tests": tests, "context": context,
             "judged": judged}  # fmt: skip
    run_capped(_trust_or_refuse, tmp_path, entry)
