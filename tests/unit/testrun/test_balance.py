"""Balancing runfile sections over K parts: each test once, sections whole, makespan bounded.

The bound the issue asks for, makespan <= 1.1 x max(total/K, largest section), cannot hold for
every input (three equal sections on two parts: the best split is 2, the bound 1.65); what
`balance` guarantees is Graham's LPT bound, LB + (1 - 1/K) x (the (K+1)-th largest section),
which gives 1.1 x LB whenever sections are fine-grained enough (`within_bound_guaranteed`).
Both are checked on random inputs, and on the sections of a real recorded quick run.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.testrun.balance import Assignment, Section, balance, within_bound_guaranteed
from imagefactory.testrun.results import parse_file

LOGS = Path(__file__).parent / "logs"


def sections_of(weights: list[int]) -> tuple[list[Section], dict[str, int]]:
    sections = [Section(f"s{i:03d}", (f"s{i:03d}/a", f"s{i:03d}/b")) for i in range(len(weights))]
    return sections, {s.name: w for s, w in zip(sections, weights, strict=True)}


def check_invariants(sections: list[Section], weights: dict[str, int], done: Assignment) -> None:
    placed = Counter(s.name for p in done.parts for s in p.sections)
    assert placed == Counter(s.name for s in sections)  # each section once, whole
    tests = Counter(t for p in done.parts for t in p.tests)
    assert tests == Counter(t for s in sections for t in s.tests)  # each test once
    for part in done.parts:
        assert part.expected_ms == sum(weights[s.name] for s in part.sections)
    assert [p.index for p in done.parts] == list(range(1, len(done.parts) + 1))


def optimum(weights: list[int], parts: int) -> int:
    best = sum(weights)
    for choice in itertools.product(range(parts), repeat=len(weights)):
        loads = [0] * parts
        for w, p in zip(weights, choice, strict=True):
            loads[p] += w
        best = min(best, max(loads))
    return best


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3_600_000), min_size=0, max_size=80),
    st.integers(min_value=1, max_value=12),
)
def test_every_test_once_and_the_lpt_bound_always_holds(weights: list[int], parts: int) -> None:
    sections, table = sections_of(weights)
    done = balance(sections, table, parts)
    check_invariants(sections, table, done)
    assert len(done.parts) == parts
    ordered = sorted(weights, reverse=True)
    slack = (1 - 1 / parts) * ordered[parts] if len(ordered) > parts else 0.0
    assert done.makespan_ms <= done.lower_bound_ms + slack + 1e-6
    if within_bound_guaranteed(weights, parts):
        assert done.makespan_ms <= 1.1 * done.lower_bound_ms + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=3),
)
def test_within_the_lpt_ratio_of_the_true_optimum(weights: list[int], parts: int) -> None:
    sections, table = sections_of(weights)
    done = balance(sections, table, parts)
    assert done.makespan_ms <= (4 / 3 - 1 / (3 * parts)) * optimum(weights, parts) + 1e-6


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=6),
    st.randoms(use_true_random=False),
)
def test_the_split_does_not_depend_on_the_input_order(
    weights: list[int], parts: int, rnd: random.Random
) -> None:
    sections, table = sections_of(weights)
    shuffled = list(sections)
    rnd.shuffle(shuffled)
    assert balance(sections, table, parts) == balance(shuffled, table, parts)


def test_equal_weights_tie_break_by_name_and_index() -> None:
    sections, table = sections_of([5, 5, 5, 5])
    done = balance(sections, table, 2)
    assert [[s.name for s in p.sections] for p in done.parts] == [
        ["s000", "s002"],
        ["s001", "s003"],
    ]


def test_three_equal_sections_on_two_parts_cannot_meet_the_issue_bound() -> None:
    """The documented failure: no split reaches 1.1 x LB; balance finds the optimum."""
    sections, table = sections_of([10, 10, 10])
    done = balance(sections, table, 2)
    assert done.makespan_ms == optimum([10, 10, 10], 2) == 20
    assert done.makespan_ms > 1.1 * done.lower_bound_ms
    assert not within_bound_guaranteed([10, 10, 10], 2)


def test_the_search_improves_on_plain_lpt() -> None:
    """LPT alone puts 3+2 / 3+2+2 (7); moving and swapping reaches 6 / 6."""
    sections, table = sections_of([3, 3, 2, 2, 2])
    done = balance(sections, table, 2)
    assert sorted(p.expected_ms for p in done.parts) == [6, 6]


def test_more_parts_than_sections_leaves_parts_empty() -> None:
    sections, table = sections_of([7, 3])
    done = balance(sections, table, 4)
    assert [len(p.sections) for p in done.parts] == [1, 1, 0, 0]
    assert done.makespan_ms == 7


def test_a_real_quick_run_split_by_its_own_durations() -> None:
    """The committed 2.3.9 Debian console: its sections and their recorded times."""
    run = parse_file(LOGS / "zts-2.3.9-debian13-quick-real.log")
    grouped: dict[str, list[str]] = {}
    weights: dict[str, int] = {}
    for test in run.tests:
        section = test.group + (f":{test.identifier}" if test.identifier else "")
        grouped.setdefault(section, []).append(test.key)
        weights[section] = weights.get(section, 0) + round((test.duration_s or 0) * 1000)
    sections = [Section(n, tuple(t)) for n, t in grouped.items()]
    for parts in (2, 3, 4):
        done = balance(sections, weights, parts)
        check_invariants(sections, weights, done)
        assert done.makespan_ms <= 1.1 * done.lower_bound_ms, (parts, done.makespan_ms)
