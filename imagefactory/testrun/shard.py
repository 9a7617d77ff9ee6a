"""`--shard i/N`: run the i-th of N balanced parts of a selection; the same split everywhere.

A run that outgrows one machine goes to an existing engine (a CI matrix, Kubernetes Indexed
Jobs); this project's part is to split deterministically, run one part, and merge
(`merge.py`).  Each distro's selection is resolved on the host against its golden's suite
inventory (`resolve.py`), cut into runfile sections, weighed with a durations snapshot and
balanced (`balance.py`); the shard's clone gets only its part's tests (tests.txt), and the
guest's selector keeps each section's setup and cleanup around them.

Why the inventory is required: the sections and, for `--suite`, the test list come from it;
a golden without one cannot be split on the host.  Tests the selection names that this
suite lacks (absent) are reported by every shard; the merge counts each once.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagefactory.errors import UsageError
from imagefactory.testrun.balance import Assignment, Section, balance
from imagefactory.testrun.durations import Durations
from imagefactory.testrun.inventory import Inventory
from imagefactory.testrun.resolve import DistroTests, StagePlan
from imagefactory.testrun.results import name_from_path
from imagefactory.testrun.selection import Selection

MAX_SHARDS = 256
"""GitHub Actions' matrix limit; more parts than that is a typo."""
UNKNOWN_S = 1.0
"""A test's weight when nothing at all is known (then the split is by count)."""
_SPEC = re.compile(r"([0-9]{1,4})/([0-9]{1,4})")


@dataclass(frozen=True)
class ShardSpec:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """`i/N` with 1 <= i <= N <= 256; ValueError (one line) otherwise."""
    match = _SPEC.fullmatch(text.strip())
    shown = repr(text) if len(repr(text)) <= 40 else repr(text)[:37] + "..."
    if match is None:
        raise ValueError(f"{shown} is not i/N (e.g. 2/4: the second of four parts)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"{shown}: N must be between 1 and {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ValueError(f"{shown}: i must be between 1 and N ({count})")
    return ShardSpec(index, count)


@dataclass
class DistroSplit:
    """One distro's selection cut into sections, weighed and balanced."""

    sections: tuple[Section, ...]
    weights: dict[str, int]
    assignment: Assignment
    absent: tuple[str, ...]
    suite_version: str | None
    estimated: bool
    """True when no test of the selection had a recorded duration (a split by count)."""

    def section_part(self) -> dict[str, int]:
        return {s.name: p.index for p in self.assignment.parts for s in p.sections}


@dataclass(frozen=True, eq=False)
class Shard:
    """What a sharded Selection carries: which part, balanced by which snapshot.

    `splits` is filled when the plan is resolved (`shard_plan`), so run.json can record the
    whole split that chose this part.
    """

    spec: ShardSpec
    durations: Durations
    splits: dict[str, DistroSplit] = field(default_factory=dict)

    def record(self, selection: str) -> dict[str, Any]:
        """run.json's `shard`: enough for `klab results merge` to check the parts agree."""
        return {
            "index": self.spec.index,
            "count": self.spec.count,
            "selection": selection,
            "durations_digest": self.durations.digest,
            "distros": {
                distro: {
                    "sections": split.section_part(),
                    "tests": {t: p.index for p in split.assignment.parts for t in p.tests},
                    "expected_s": [p.expected_ms / 1000 for p in split.assignment.parts],
                    "estimated": split.estimated,
                }
                for distro, split in sorted(self.splits.items())
            },
        }


def suite_tests(inventory: Inventory, runfiles: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(runfiles)
    return tuple(n for n, listed in inventory.tests.items() if any(r in listed for r in wanted))


def sections_of(
    tests: Sequence[str], inventory: Inventory, runfiles: Sequence[str]
) -> tuple[Section, ...]:
    """The runfile sections `tests` fall in (the first selected runfile listing each).

    A test no selected runfile lists runs in its directory's own section, as the guest's
    selector gives it one: `tests/functional/<dir>` (merged with that directory's listed
    section when there is one, as the guest merges them).
    """
    grouped: dict[str, list[str]] = {}
    for test in tests:
        listed = inventory.tests.get(test, {})
        section = next((listed[r].section for r in runfiles if r in listed), None)
        if section is None:
            section = f"tests/functional/{test.rpartition('/')[0] or test}"
        grouped.setdefault(section, []).append(test)
    return tuple(Section(name, tuple(names)) for name, names in grouped.items())


def _helpers(section: str) -> tuple[str, str]:
    """The keys of a section's setup and cleanup results (`atime/setup (Linux)`)."""
    path, _, ident = section.partition(":")
    directory = name_from_path(path)
    suffix = f" ({ident})" if ident else ""
    return f"{directory}/setup{suffix}", f"{directory}/cleanup{suffix}"


def _is_helper(key: str) -> bool:
    """A section's setup or cleanup result (`atime/setup`, `atime/cleanup (Linux)`)."""
    return key.split(" (", 1)[0].endswith(("/setup", "/cleanup"))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def weigh(sections: Sequence[Section], seconds: Mapping[str, float]) -> tuple[dict[str, int], bool]:
    """Milliseconds per section: its tests, setup and cleanup as recorded.

    An unknown test weighs the median of the known tests of this selection (of every known
    test when none of the selection is known; 1 s when nothing is); an unknown setup or
    cleanup the median of the known ones (0 when none is).  Returns the weights and whether
    they are estimates only (no test of the selection known).
    """
    tests = [t for s in sections for t in s.tests]
    known = [seconds[t] for t in tests if t in seconds]
    helpers = [v for k, v in seconds.items() if _is_helper(k)]
    others = [v for k, v in seconds.items() if not _is_helper(k)]
    test_default = next((m for m in (_median(known), _median(others)) if m is not None), UNKNOWN_S)
    helper_default = _median(helpers) or 0.0
    weights: dict[str, int] = {}
    for section in sections:
        total = sum(seconds.get(t, test_default) for t in section.tests)
        total += sum(seconds.get(k, helper_default) for k in _helpers(section.name))
        weights[section.name] = round(total * 1000)
    return weights, not known


def split_distro(
    distro: str,
    tests: Sequence[str],
    inventory: Inventory,
    selection: Selection,
    durations: Durations,
    parts: int,
    *,
    absent: Sequence[str] = (),
) -> DistroSplit:
    sections = sections_of(tests, inventory, selection.runfiles)
    weights, estimated = weigh(sections, durations.for_distro(distro))
    return DistroSplit(
        sections,
        weights,
        balance(sections, weights, parts),
        tuple(absent),
        inventory.suite_version,
        estimated,
    )


def split_plan(
    plan: StagePlan,
    selection: Selection,
    inventories: Mapping[str, Inventory | None],
    durations: Durations,
    parts: int,
) -> dict[str, DistroSplit]:
    """Each built distro's split into `parts`; UsageError when one cannot be split."""
    if selection.mode != "zts":
        raise UsageError(
            "--shard and --dry-run split zfs-tests selections (--run, --group, --suite); "
            "recipes are not split",
            hint="run recipes without --shard",
        )
    splits: dict[str, DistroSplit] = {}
    for distro, golden in plan.goldens.items():
        if golden is None:
            continue  # not built: reported as such by every shard
        inventory = inventories.get(distro)
        if inventory is None:
            raise UsageError(
                f"{distro}: the golden (build {golden.provenance.build_id}) has no usable suite "
                "inventory: its selection cannot be split on the host",
                hint=f"rebuild it (make golden-ztest DISTRO={distro})",
            )
        resolved = plan.tests.get(distro)
        if resolved is not None and resolved.tests is not None:
            tests, absent = resolved.tests, resolved.absent
        else:
            tests, absent = suite_tests(inventory, selection.runfiles), ()
        splits[distro] = split_distro(
            distro, tests, inventory, selection, durations, parts, absent=absent
        )
    return splits


def shard_plan(
    plan: StagePlan, selection: Selection, inventories: Mapping[str, Inventory | None]
) -> StagePlan:
    """`plan` reduced to the selection's shard (recorded in `selection.shard.splits`)."""
    shard = selection.shard
    assert shard is not None
    splits = split_plan(plan, selection, inventories, shard.durations, shard.spec.count)
    for distro, split in splits.items():
        if split.sections and len(split.sections) < shard.spec.count:
            raise UsageError(
                f"--shard {shard.spec}: {distro} has only {len(split.sections)} runfile "
                f"section(s) of {selection.unsharded}, fewer than {shard.spec.count} shards",
                hint="a section (a directory with its setup and cleanup) is never split; "
                "use fewer shards",
            )
    shard.splits.clear()
    shard.splits.update(splits)
    tests = dict(plan.tests)
    for distro, split in splits.items():
        part = split.assignment.parts[shard.spec.index - 1]
        tests[distro] = DistroTests(part.tests, split.absent, split.suite_version)
    return StagePlan(plan.goldens, tests, plan.warnings)
