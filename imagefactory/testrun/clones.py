"""One distro over several boots: K clones in parallel, and fresh clones after a crash.

`--clones K` splits a distro's resolved selection into K parts with the shards' balancing
(`shard.split_distro`: by runfile section, never split, weighed by recorded durations), and
each clone runs its part.  A clone that crashes (testrun/crash.py) hands its unfinished
tests to a fresh clone.  Every boot is one *piece*, with its own artifacts directory:

    <distro>/                  one clone, first boot (the layout of an unsplit run)
    <distro>/clone-<k>/        clone k of K, first boot
    <distro>/[clone-<k>/]boot-<n>/   the n-th boot of that part, after a crash

The pieces become one outcome -- one column of the matrix -- by the merge's own `combine`
(merge.py: shards across machines are pieces too), log paths relative to `<distro>/`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagefactory.testrun.collect import RECIPE_GROUP, GoldenFacts, Judged, Judging
from imagefactory.testrun.crash import ConsoleReading, remaining, running_test
from imagefactory.testrun.durations import Durations
from imagefactory.testrun.inventory import Inventory
from imagefactory.testrun.judge import CRASHED_RESULT
from imagefactory.testrun.merge import combine
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.resolve import DistroTests, StagePlan
from imagefactory.testrun.results import KILLED, TestResult
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.shard import DistroSplit, split_distro, suite_tests

NOTE_LINES = 12
"""Console lines in a crashed test's note; crash.txt has the whole excerpt."""
GUEST = "klab/guest"
"""The name a crash is recorded under when no test was running (boot, setup of the run)."""


def piece_dir(base: Path, clone: int, clones: int, boot: int) -> Path:
    """Where one boot's artifacts go (see the module doc)."""
    directory = base / f"clone-{clone}" if clones > 1 else base
    return directory / f"boot-{boot}" if boot > 1 else directory


def clone_splits(
    plan: StagePlan,
    selection: Selection,
    inventories: Mapping[str, Inventory | None],
    durations: Durations,
    clones: int,
) -> dict[str, DistroSplit]:
    """Each distro that can be split over `clones` clones; the others run in one clone
    (recipes, a golden without an inventory, a selection of one section)."""
    if clones <= 1 or selection.mode != "zts":
        return {}
    splits: dict[str, DistroSplit] = {}
    for distro, golden in plan.goldens.items():
        inventory = inventories.get(distro)
        if golden is None or inventory is None:
            continue
        resolved = plan.tests.get(distro)
        if resolved is not None and resolved.tests is not None:
            tests, absent = resolved.tests, resolved.absent
        else:
            tests, absent = suite_tests(inventory, selection.runfiles), ()
        split = split_distro(distro, tests, inventory, selection, durations, clones, absent=absent)
        if len([p for p in split.assignment.parts if p.tests]) > 1:
            splits[distro] = split
    return splits


def part_tests(split: DistroSplit) -> tuple[DistroTests, ...]:
    """Each non-empty part's tests; the absent names go with the first only (counted once)."""
    parts = [p for p in split.assignment.parts if p.tests]
    return tuple(
        DistroTests(p.tests, split.absent if i == 0 else (), split.suite_version)
        for i, p in enumerate(parts)
    )


@dataclass(frozen=True)
class Resume:
    """What a fresh clone runs after a crash (None: nothing is left)."""

    tests: DistroTests | None
    selection: Selection


def crashed_piece(
    distro: str,
    artifacts: Path,
    reading: ConsoleReading,
    why: str,
    *,
    tests: DistroTests,
    selection: Selection,
    facts: GoldenFacts,
    judging: Judging,
) -> tuple[Judged, Resume | None]:
    """The judged piece of a boot that crashed, and what a fresh clone should run next.

    Finished tests keep their results (from the console); the running one is CRASHED with
    the console excerpt; the rest is the resume, in a fresh clone.  crash.txt keeps the
    excerpt and what the running test printed, next to the console.
    """
    if selection.mode == "recipe":
        results, crashed, resume = _recipes(reading, selection)
    else:
        results, crashed, resume = _suite(reading, tests, selection)
    excerpt_note = "\n".join(reading.excerpt.splitlines()[-NOTE_LINES:]) if reading.crash else ""
    note = why if not excerpt_note else f"{why}\n{excerpt_note}"
    results.append(TestResult(name=crashed or GUEST, result=CRASHED_RESULT, note=note))
    (artifacts / "crash.txt").write_text(
        f"{why}\nrunning: {crashed or 'no test (the guest crashed outside the tests)'}\n\n"
        f"--- console ---\n{reading.excerpt}\n\n"
        f"--- what the running test printed (as far as the console shows) ---\n"
        f"{reading.running_output}\n",
        encoding="utf-8",
    )
    outcome = DistroOutcome.from_tests(
        distro,
        results,
        **facts.outcome_fields(),
        artifacts_dir=str(artifacts),
        baseline=judging.baseline,
        context=judging.context(distro, artifacts, facts),
    )
    outcome.message = why
    judged = Judged(outcome, {crashed or GUEST: "crash.txt"})
    return judged, resume


def _suite(
    reading: ConsoleReading, tests: DistroTests, selection: Selection
) -> tuple[list[TestResult], str | None, Resume | None]:
    finished = reading.finished()
    crashed = running_test(reading)
    wanted = tests.tests if tests.tests is not None else (reading.order or None)
    helper = crashed is not None and crashed.endswith(("/setup", "/cleanup"))
    if crashed is not None and wanted is not None and crashed not in wanted and not helper:
        crashed = None  # a name this boot was not given: trust none of it
    if wanted is None:  # nothing known of the order: the whole part again
        return list(reading.parsed.tests), crashed, Resume(tests, selection)
    left = remaining(wanted, finished, crashed)
    resume = Resume(DistroTests(tuple(left), (), tests.suite_version), selection)
    return list(reading.parsed.tests), crashed, resume if left else None


def _recipes(
    reading: ConsoleReading, selection: Selection
) -> tuple[list[TestResult], str | None, Resume | None]:
    results: list[TestResult] = []
    finished: list[str] = []
    for name in selection.items:
        ended = reading.recipes_done.get(name)
        if ended is None or name == reading.recipe_running:  # a retry was running
            continue
        finished.append(name)
        rc = ended[0]
        word = "PASS" if rc == 0 else KILLED if rc in (124, 137) else "FAIL"
        note = None if rc == 0 else f"exit status {rc}"
        results.append(TestResult(name=f"{RECIPE_GROUP}/{name}", result=word, note=note))
    running = reading.recipe_running
    if running not in selection.items:
        running = next((n for n in selection.items if n not in finished), None)
    left = [n for n in selection.items if n not in finished and n != running]
    crashed = f"{RECIPE_GROUP}/{running}" if running is not None else None
    if not left:
        return results, crashed, None
    rest = dataclasses.replace(
        selection,
        items=tuple(left),
        recipes=tuple(r for r in selection.recipes if r.name in left),
    )
    return results, crashed, Resume(DistroTests(None), rest)


def unrun(resume: Resume, retries: int) -> list[TestResult]:
    """The tests a used-up `--crash-retries` leaves unrun: KILLED, never a pass."""
    note = f"not run: the guest crashed {retries + 1} time(s) (--crash-retries {retries})"
    if resume.selection.mode == "recipe":
        names = [f"{RECIPE_GROUP}/{n}" for n in resume.selection.items]
    else:
        names = list(resume.tests.tests or ()) if resume.tests is not None else []
    return [TestResult(name=n, result=KILLED, note=note) for n in names]


def merge_pieces(distro: str, pieces: Sequence[tuple[str, Path, Judged]], base: Path) -> Judged:
    """One judged outcome from every boot of a distro (label, artifacts directory, judged)."""
    if len(pieces) == 1:
        return pieces[0][2]
    outcome = combine(
        distro, [(label, judged.outcome) for label, _, judged in pieces], len(pieces), base
    )
    paths: dict[str, str] = {}
    for _, directory, judged in pieces:
        prefix = directory.relative_to(base).as_posix()
        for key, path in judged.log_paths.items():
            paths.setdefault(key, path if prefix == "." else f"{prefix}/{path}")
    empty = all(judged.selection_empty for _, _, judged in pieces)
    return Judged(outcome, paths, empty)
