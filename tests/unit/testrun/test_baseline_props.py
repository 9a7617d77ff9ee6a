"""Property tests: no baseline file, however hostile, gets past the loader as a traceback.

Each case is loaded in a forked child under a time and memory cap (tests/fixtures/capped.py)
that only catches hangs and bombs; speed is measured in bench/, never asserted here.  The
child accepts a loaded baseline or a SpecError/UsageError whose every line names the file
(and, past the first, a line); anything else fails the test with its traceback.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.errors import SpecError, UsageError
from imagefactory.testrun.baseline import Baseline, parse_baseline_text
from imagefactory.testrun.judge import judge_tests
from imagefactory.testrun.results import TestResult
from imagefactory.testrun.verdict import RunContext
from tests.fixtures.capped import run_capped

DISPLAY = "hostile.yaml"
FIELDS = ["test", "result", "kind", "reason", "distros", "zfs", "kernel", "accel", "expires"]
WORDS = [
    "FAIL",
    "SKIP",
    "KILLED",
    "PASS",
    "known",
    "flaky",
    "tcg",
    "kvm",
    ">=2.3,<2.4",
    "==2.2.*",
    "rsend/*",
    "[",
    "(a+)+$",
    "~=",
    "2027-06-30",
    "*",
    "a/b",
]
"""Values a baseline means, and a few it must refuse."""
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_or_refuse(text: str) -> None:
    """In the child: load; a refusal must be one of ours, naming the file on every line."""
    try:
        entries = parse_baseline_text(text, DISPLAY)
    except (SpecError, UsageError) as exc:
        lines = str(exc).splitlines()
        assert lines, "an empty error message"
        assert all(line.startswith(f"{DISPLAY}:") for line in lines), lines
        return
    # Whatever loaded must be usable: judge a few results with a context that knows all.
    context = RunContext(distro="debian13", zfs_version="2.3.9", kernel="6.12.48", accel="tcg")
    tests = [TestResult(e.spec.test.replace("*", "x"), e.spec.result[0]) for e in entries[:20]]
    judge_tests([*tests, TestResult("a/b", "PASS")], Baseline(tuple(entries)), context)


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True),
        st.text(max_size=40),
        st.sampled_from(WORDS),
        st.dates(min_value=dt.date(1, 1, 1)),
    )


def values() -> st.SearchStrategy[Any]:
    return st.one_of(
        scalars(),
        st.lists(scalars(), max_size=4),
        st.lists(st.lists(scalars(), max_size=2), max_size=2),
        st.dictionaries(st.text(max_size=5), scalars(), max_size=2),
    )


entries = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from([*FIELDS, "colour", ""]), values(), max_size=10),
        scalars(),
        st.lists(scalars(), max_size=2),
    ),
    max_size=8,
)


@SETTINGS
@given(entries)
def test_structured_hostile_entries_load_or_are_refused_cleanly(data: list[Any]) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    run_capped(load_or_refuse, text)


@SETTINGS
@given(st.text(max_size=400))
def test_random_text_loads_or_is_refused_cleanly(text: str) -> None:
    run_capped(load_or_refuse, text)


FRAGMENTS = [
    "- ", "test: ", "result: ", "[FAIL, KILLED]", "kind: known", "reason: r", "\n", "  ",
    "&a ", "*a", "!!python/object:os.system ", "!!binary ", "!!timestamp ", "!!int ", "? ",
    "{", "}", "[", "]", ": ", "'", '"', "\\u0000", "\t", "#", "---\n", "...\n", "%YAML 1.1\n",
    "<<: *a", "!!set ", "!!omap ", "expires: ", "2027-13-45", "zfs: ", "kernel: ", "(a+)+",
]  # fmt: skip


@SETTINGS
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_yaml_shaped_garbage_loads_or_is_refused_cleanly(parts: list[str]) -> None:
    run_capped(load_or_refuse, "".join(parts))


def test_bombs_are_refused_within_the_caps() -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    nested = "- " + "[" * 5000 + "]" * 5000 + "\n"
    wide = "".join(
        f"- {{test: t/{i}, result: FAIL, kind: known, reason: r}}\n" for i in range(5000)
    )
    aliased = "- &e {test: a/b, result: FAIL, kind: known, reason: r}\n" + "- *e\n" * 1000
    for text in (laughs, nested, wide, aliased):
        run_capped(load_or_refuse, text)
