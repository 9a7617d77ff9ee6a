"""recipes.tsv, as the guest writes it (one row per attempt), read back on the host."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.testrun.collect import read_recipe_results
from tests.fixtures.capped import run_capped


def test_attempts_of_one_recipe_become_one_result_the_last_deciding(tmp_path: Path) -> None:
    table = tmp_path / "recipes.tsv"
    table.write_text(
        "flaky\t1\t2.500\t1\nflaky\t0\t2.250\t2\n"
        "slow\t124\t60.000\t1\n"
        "old-runner\t3\t1.000\n"  # no attempt column: one attempt
        "\tbroken line\n"
        "nan\t0\tnan\t1\n"
    )

    results = {r.name: r for r in read_recipe_results(table)}

    assert list(results) == ["recipes/flaky", "recipes/slow", "recipes/old-runner", "recipes/nan"]
    flaky = results["recipes/flaky"]
    assert (flaky.result, flaky.attempts, flaky.duration_s) == ("PASS", ("FAIL", "PASS"), 2.25)
    assert flaky.note == "exit status 1, then 0"
    assert results["recipes/slow"].attempts == ("KILLED",)
    assert results["recipes/old-runner"].result == "FAIL"
    assert results["recipes/nan"].duration_s is None


def test_rows_are_ordered_by_their_attempt_number(tmp_path: Path) -> None:
    table = tmp_path / "recipes.tsv"
    table.write_text("r\t0\t1.0\t2\nr\t1\t1.0\t1\n")

    [result] = read_recipe_results(table)

    assert result.attempts == ("FAIL", "PASS")


def _read(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    for result in read_recipe_results(path):
        assert result.attempts and result.attempts[-1] == result.result


_ROW = st.lists(
    st.sampled_from(["r", "x", "", "0", "1", "-1", "124", "99999999999", "1.5", "inf", "\t",
                     "2", "\x00", "é", " "]),
    max_size=6,
).map("\t".join)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048) | st.lists(_ROW, max_size=20).map("\n".join).map(str.encode))
def test_any_table_reads_without_a_traceback(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_capped(_read, data, tmp_path_factory.mktemp("tsv") / "recipes.tsv")
