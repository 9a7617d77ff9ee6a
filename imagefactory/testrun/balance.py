"""Split a selection into K parts of about equal running time, one runfile section at a time.

The unit is the runfile section (`[tests/functional/atime:Linux]`: one directory's tests
with that section's setup and cleanup).  It is never split: its tests share the pool and
files its setup made, and running half of it elsewhere would run the setup twice for nothing
or, worse, a test without its setup.  zfs-tests.sh's own `-T i/N` deals tags by *count*,
which left the OpenZFS CI's Fedora halves 25 minutes apart; here each section weighs its
recorded duration (`durations.py`) and the parts are balanced by time.

Algorithm: LPT (longest section first, onto the part that is least loaded), then a local
search that moves one section, or swaps two, between the most loaded part and another while
that lowers the pair's larger load.  Each step strictly lowers the sum of squared loads, so
it ends; the makespan never rises.  Everything is integer milliseconds and every tie is
broken by section name and part index: one durations snapshot gives one split on every
machine, whatever order the sections came in.

Guarantee (Graham's argument for LPT, kept by the search): with LB = max(total / K, largest
section) and w the (K+1)-th largest section, makespan <= LB + (1 - 1/K) * w.  So the
makespan is within 1.1 x LB whenever (1 - 1/K) * w <= 0.1 x LB (`within_bound_guaranteed`).
When it is not -- few sections, each a large share of a part -- no split may reach 1.1 x LB
at all: three equal sections on two parts give 2 against a bound of 1.5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_STEPS = 100_000
"""A bound on the search's steps (each strictly improves; real inputs take a few dozen)."""


@dataclass(frozen=True, slots=True)
class Section:
    """A runfile section (or a recipe): its name and the tests it runs, in runfile order."""

    name: str
    tests: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Part:
    index: int
    """1-based, as `--shard i/N` names it."""
    sections: tuple[Section, ...]
    expected_ms: int

    @property
    def tests(self) -> tuple[str, ...]:
        return tuple(t for s in self.sections for t in s.tests)


@dataclass(frozen=True, slots=True)
class Assignment:
    parts: tuple[Part, ...]
    total_ms: int
    largest_ms: int

    @property
    def makespan_ms(self) -> int:
        return max((p.expected_ms for p in self.parts), default=0)

    @property
    def lower_bound_ms(self) -> float:
        """No split can finish sooner: a part's fair share, or the largest section."""
        if not self.parts:
            return 0.0
        return max(self.total_ms / len(self.parts), float(self.largest_ms))


def within_bound_guaranteed(weights: Sequence[int], parts: int, factor: float = 1.1) -> bool:
    """Whether `balance` is certain to reach `factor` x the lower bound for these weights."""
    if parts <= 1 or len(weights) <= parts:
        return True
    ordered = sorted(weights, reverse=True)
    lower = max(sum(ordered) / parts, float(ordered[0]))
    return (1 - 1 / parts) * ordered[parts] <= (factor - 1) * lower


def balance(sections: Sequence[Section], weights: Mapping[str, int], parts: int) -> Assignment:
    """`sections` over `parts` parts by `weights` (section name -> ms, >= 0).

    Section names must be unique; a part may be empty when there are fewer sections than
    parts (the caller decides whether that is an error).
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, not {parts}")
    names = [s.name for s in sections]
    if len(set(names)) != len(names):
        raise ValueError("section names must be unique")
    weight = {s.name: max(0, int(weights[s.name])) for s in sections}
    order = sorted(sections, key=lambda s: (-weight[s.name], s.name))
    bins: list[list[Section]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for section in order:
        target = min(range(parts), key=lambda i: (loads[i], i))
        bins[target].append(section)
        loads[target] += weight[section.name]
    _improve(bins, loads, weight)
    built = tuple(
        Part(i + 1, tuple(sorted(b, key=lambda s: s.name)), loads[i]) for i, b in enumerate(bins)
    )
    return Assignment(built, sum(weight.values()), max(weight.values(), default=0))


def _improve(bins: list[list[Section]], loads: list[int], weight: Mapping[str, int]) -> None:
    """Moves and swaps out of the most loaded part while one lowers that pair's maximum."""
    for _ in range(MAX_STEPS):
        heavy = max(range(len(bins)), key=lambda i: (loads[i], -i))
        if not _step(heavy, bins, loads, weight):
            return


def _step(heavy: int, bins: list[list[Section]], loads: list[int], w: Mapping[str, int]) -> bool:
    """The best single move or swap from `heavy` to another part; False when none helps."""
    best: tuple[int, int, int, int] | None = None  # (new pair max, other, i in heavy, j or -1)
    top = loads[heavy]
    mine = sorted(range(len(bins[heavy])), key=lambda i: bins[heavy][i].name)
    for other in range(len(bins)):
        if other == heavy:
            continue
        theirs = [-1, *sorted(range(len(bins[other])), key=lambda j: bins[other][j].name)]
        for i in mine:
            wi = w[bins[heavy][i].name]
            for j in theirs:
                delta = wi - (w[bins[other][j].name] if j >= 0 else 0)
                if delta <= 0:
                    continue
                pair = max(top - delta, loads[other] + delta)
                if pair < top and (best is None or pair < best[0]):
                    best = (pair, other, i, j)
    if best is None:
        return False
    _, other, i, j = best
    moved = bins[heavy].pop(i)
    delta = w[moved.name]
    if j >= 0:
        back = bins[other].pop(j)
        bins[heavy].append(back)
        delta -= w[back.name]
    bins[other].append(moved)
    loads[heavy] -= delta
    loads[other] += delta
    return True
