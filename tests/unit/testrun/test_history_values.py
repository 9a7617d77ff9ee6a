"""The history commands' value parsers: run references, counts, shares, durations.

Examples pin the grammar; hypothesis feeds random and hostile text (each case in a capped
child process, tests/fixtures/capped.py): a parser either returns a value in range or
raises ValueError with a message, never anything else.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.testrun.history.values import (
    MAX_RUNS,
    RunRef,
    argparse_type,
    parse_count,
    parse_ratio,
    parse_run_ref,
    parse_seconds,
)
from tests.fixtures.capped import run_capped


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("last", RunRef("last", 0)),
        ("last~3", RunRef("last~3", 3)),
        (" last~0 ", RunRef("last~0", 0)),
        ("20260422T033417Z-1a2b3c", RunRef("20260422T033417Z-1a2b3c")),
        ("20260422T03", RunRef("20260422T03")),
        ("run0", RunRef("run0")),
    ],
)
def test_run_references(text: str, ref: RunRef) -> None:
    assert parse_run_ref(text) == ref


@pytest.mark.parametrize(
    "text", ["", "last~", "last~-1", "last~x", "../../etc", "a b", "-run", "%", "run\x1b[31m"]
)
def test_bad_run_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a run id|at most"):
        parse_run_ref(text)


@pytest.mark.parametrize(
    ("text", "value"), [("1", 1), ("100", 100), (" 7 ", 7), ("+5", 5), ("000100000", MAX_RUNS)]
)
def test_counts(text: str, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "too small"),
        ("-0", "too small"),
        ("-99999999999999999999999", "too small"),
        ("100001", "too large"),
        ("100000000000000000000", "too large"),
        ("1.5", "not a whole number"),
        ("", "not a whole number"),
        ("١٢", "not a whole number"),  # Arabic-Indic digits: int() would take them
    ],
)
def test_bad_counts(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_count(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("5%", 0.05), ("0.05", 0.05), (".25", 0.25), ("25 %", 0.25), ("100%", 1.0), ("0", 0.0)],
)
def test_ratios(text: str, value: float) -> None:
    assert parse_ratio(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5", "ambiguous"),
        ("1", "ambiguous"),
        ("101%", "too large"),
        ("-5%", "not a percentage"),
        ("nan", "not a percentage"),
        ("inf%", "not a percentage"),
        ("1e-3", "not a percentage"),
    ],
)
def test_bad_ratios(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ratio(text)


def test_a_rise_threshold_may_exceed_100_percent() -> None:
    assert parse_ratio("250%", high=100.0) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("text", "value"), [("5", 5.0), ("5s", 5.0), ("1.5m", 90.0), ("250ms", 0.25), ("0", 0.0)]
)
def test_seconds(text: str, value: float) -> None:
    assert parse_seconds(text) == pytest.approx(value)


@pytest.mark.parametrize(("text", "message"), [("25h", "too long"), ("-1", "not a duration")])
def test_bad_seconds(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_seconds(text)


def test_argparse_type_turns_value_errors_into_argparse_errors() -> None:
    convert = argparse_type(parse_count, "count")
    with pytest.raises(argparse.ArgumentTypeError, match="too large"):
        convert("100000000000000000000")


# -- property tests --------------------------------------------------------------------------

hostile = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="0123456789+-.%~smhlast ", max_size=60),
    st.builds(lambda n: "9" * n, st.integers(1, 5000)),
    st.builds(lambda n: "last~" + "9" * n, st.integers(1, 5000)),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
)


def _never_more_than_a_value_error(parse: Callable[[str], object], text: str) -> None:
    try:
        value = parse(text)
    except ValueError as exc:
        assert str(exc), "an error must say why"
        return
    if isinstance(value, float):
        assert math.isfinite(value) and value >= 0
    if isinstance(value, int):
        assert 1 <= value <= MAX_RUNS
    if isinstance(value, RunRef):
        assert value.text and (value.back is None or 0 <= value.back < MAX_RUNS)


def _all_parsers(text: str) -> None:
    for parse in (parse_count, parse_ratio, parse_seconds, parse_run_ref):
        _never_more_than_a_value_error(parse, text)
    _never_more_than_a_value_error(lambda t: parse_ratio(t, high=100.0), text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_hostile_text_gives_a_value_in_range_or_a_value_error(text: str) -> None:
    run_capped(_all_parsers, text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_every_integer_is_in_range_or_refused(number: int) -> None:
    try:
        value = parse_count(str(number))
    except ValueError as exc:
        assert ("too large" in str(exc)) == (number > MAX_RUNS)
        assert ("too small" in str(exc)) == (number < 1)
    else:
        assert value == number and 1 <= value <= MAX_RUNS
