"""What a run targets, decided before any boot: the distros, and `--run`/`--group`
resolved against each golden's suite inventory.

A name the user types is matched the way the suite's own documentation spells tests:
the full path (`cli_root/zpool_create/zpool_create_001_pos`), the short form that keeps the
first directories and the test (`cli_root/zpool_create_001_pos`: a test of that name under
some directory of `cli_root`; trailing directories work too, `zpool_create/zpool_create_001_pos`),
or the bare test name.  `--group` takes tags (`encryption`), directories (`cli_root/zfs_set`)
-- both as the runfiles the selection reads list them -- or test names.

Why on the host: a mistyped name used to boot a clone for nothing and then report the test
"absent", exit 0.  Now a name no selected distro knows is a usage error (exit 2) with
suggestions, and one that means several tests lists them; a name some distros lack is
absent there (no boot at all if nothing else is selected for it).  A golden built before
inventories existed resolves in the guest, as before, with a warning to rebuild it.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.spec.loader import ResolvedSpec, all_distro_names, load_distro
from imagefactory.store.base import Golden, Store
from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.inventory import Inventory, InventoryError, load_inventory
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import ParsedRun
from imagefactory.testrun.selection import Selection

SUGGESTIONS = 3
_CUTOFFS = (0.6, 0.4)
"""difflib ratios: close matches first; a looser look only when nothing is close."""
_SHOWN = 8


@dataclass(frozen=True)
class DistroTests:
    """What one distro's clone is asked to run, as decided on the host."""

    tests: tuple[str, ...] | None
    """Full test names for the guest (tests.txt); None: the guest resolves the selection."""
    absent: tuple[str, ...] = ()
    """Names of the selection this distro's suite does not have."""
    suite_version: str | None = None

    @property
    def boots(self) -> bool:
        """False when nothing of the selection exists here: no clone is worth booting."""
        return self.tests is None or bool(self.tests)


def _dirs_match(dirs: list[str], wanted: list[str]) -> bool:
    n = len(wanted)
    return n <= len(dirs) and (dirs[:n] == wanted or dirs[-n:] == wanted)


def find_test(inventory: Inventory, name: str) -> tuple[str, ...]:
    """Every test `name` may mean: itself, or same test under matching directories."""
    if name in inventory.tests:
        return (name,)
    head, _, base = name.rpartition("/")
    same = inventory.by_base.get(base, ())
    if not head:
        return same
    wanted = head.split("/")
    return tuple(t for t in same if _dirs_match(t.split("/")[:-1], wanted))


def group_tests(inventory: Inventory, group: str, runfiles: Iterable[str]) -> tuple[str, ...]:
    """Tests listed by `runfiles` in a section tagged `group`, or under directory `group`."""
    prefix = group.rstrip("/") + "/"
    wanted = tuple(runfiles)
    return tuple(
        name
        for name, listed in inventory.tests.items()
        if any(r in listed and (group in listed[r].tags or name.startswith(prefix)) for r in wanted)
    )


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def suggest(name: str, inventories: Iterable[Inventory], *, groups: bool = False) -> list[str]:
    """Up to three names close to `name`: tests (by full or bare name), tags, directories."""
    pool: dict[str, set[str]] = {}
    for inventory in inventories:
        for test, listed in inventory.tests.items():
            pool.setdefault(test, set()).add(test)
            pool.setdefault(test.rsplit("/", 1)[-1], set()).add(test)
            if groups:
                for listing in listed.values():
                    for tag in listing.tags:
                        pool.setdefault(tag, set()).add(tag)
                directory = test.rpartition("/")[0]
                if directory:
                    pool.setdefault(directory, set()).add(directory)
    base = name.rsplit("/", 1)[-1]
    for cutoff in _CUTOFFS:
        keys = set(difflib.get_close_matches(name, pool, n=10, cutoff=cutoff))
        keys |= set(difflib.get_close_matches(base, pool, n=10, cutoff=cutoff))
        if keys:
            break
    scored = sorted(keys, key=lambda k: (-max(_ratio(name, k), _ratio(base, k)), k))
    found: list[str] = []
    for key in scored:
        found += [n for n in sorted(pool[key]) if n not in found]
    return found[:SUGGESTIONS]


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def resolve_selection(
    selection: Selection, inventories: Mapping[str, Inventory | None]
) -> dict[str, DistroTests]:
    """Per distro what to send (suites and recipes need nothing: an empty dict).

    Raises UsageError when a name is ambiguous, or unknown in every selected distro that has
    an inventory while none lacks one (where one lacks it, its clone decides).
    """
    if selection.kind not in ("run", "group"):
        return {}
    flag = f"--{selection.kind}"
    known = {d: inv for d, inv in inventories.items() if inv is not None}
    plans = {d: DistroTests(None) for d, inv in inventories.items() if inv is None}
    found: dict[str, list[str]] = {d: [] for d in known}
    absent: dict[str, list[str]] = {d: [] for d in known}
    problems: list[str] = []
    for item in selection.items:
        candidates: set[str] = set()
        for distro, inventory in known.items():
            matches: tuple[str, ...] = ()
            if selection.kind == "group":
                matches = group_tests(inventory, item, selection.runfiles)
                if matches:
                    found[distro] += matches
                    continue
            matches = find_test(inventory, item)
            if len(matches) == 1:
                found[distro].append(matches[0])
            elif not matches:
                absent[distro].append(item)
            candidates.update(matches)
        if len(candidates) > 1:
            problems.append(
                f"{flag} {item} is ambiguous: it names {len(candidates)} tests "
                f"({_listing(sorted(candidates))}); give the path of one"
            )
        elif not plans and all(item in absent[d] for d in known):
            problems.append(_unknown(flag, item, known, groups=selection.kind == "group"))
    if problems:
        raise UsageError(
            "; ".join(problems),
            hint="tests: cli_root/zpool_create/zpool_create_001_pos, "
            "cli_root/zpool_create_001_pos or zpool_create_001_pos; groups: a tag or directory",
        )
    for distro, inventory in known.items():
        plans[distro] = DistroTests(
            tuple(dict.fromkeys(found[distro])),
            tuple(dict.fromkeys(absent[distro])),
            inventory.suite_version,
        )
    return plans


def _unknown(flag: str, item: str, known: Mapping[str, Inventory], *, groups: bool) -> str:
    where = ", ".join(f"{d} ({inv.label})" for d, inv in known.items())
    what = "no test, tag or directory" if groups else "no test"
    close = suggest(item, known.values(), groups=groups)
    maybe = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{flag} {item}: {what} of that name in {where}{maybe}"


def inventories_of(
    goldens: Mapping[str, Golden | None], *, state: Path | None = None
) -> tuple[dict[str, Inventory | None], list[str]]:
    """Each built golden's inventory (None without one) and a warning for each of those."""
    inventories: dict[str, Inventory | None] = {}
    warnings: list[str] = []
    for distro, golden in goldens.items():
        if golden is None:
            continue  # not built: it is reported as such and runs nothing
        digest = golden.provenance.inventory_digest
        rebuild = f"rebuild it (make golden-ztest DISTRO={distro}) to check names before booting"
        if digest is None:
            inventories[distro] = None
            warnings.append(
                f"{distro}: the golden (build {golden.provenance.build_id}) records no suite "
                f"inventory: the selection is resolved in its clone; {rebuild}"
            )
            continue
        try:
            inventories[distro] = load_inventory(digest, state)
        except InventoryError as exc:
            inventories[distro] = None
            warnings.append(f"{distro}: {exc}: the selection is resolved in its clone; {rebuild}")
    return inventories, warnings


@dataclass
class StagePlan:
    """Everything decided before the first clone: each distro's golden and what it runs."""

    goldens: dict[str, Golden | None]
    tests: dict[str, DistroTests]
    warnings: list[str]

    def for_distro(self, distro: str) -> DistroTests:
        return self.tests.get(distro, DistroTests(None))

    def unbooted(self) -> dict[str, DistroOutcome]:
        """Distros whose suite has nothing of the selection: absent there, nothing booted."""
        outcomes = {}
        for distro, plan in self.tests.items():
            golden = self.goldens.get(distro)
            if plan.boots or golden is None:
                continue
            prov = golden.provenance
            outcome = DistroOutcome.from_parsed(
                distro,
                ParsedRun(),
                absent=absent_results(plan.absent, plan.suite_version or "?"),
                golden_build_id=prov.build_id,
                zfs_version=prov.zfs_version,
                suite_version=prov.suite_version,
            )
            outcome.message = f"{outcome.message}: no clone booted"
            outcomes[distro] = outcome
        return outcomes


def plan_stage(
    goldens: Mapping[str, Golden | None], selection: Selection, *, state: Path | None = None
) -> StagePlan:
    """Resolve `selection` against the goldens' inventories; UsageError before any boot.

    A sharded selection is then cut to its part (testrun/shard.py)."""
    if selection.kind not in ("run", "group") and selection.shard is None:
        return StagePlan(dict(goldens), {}, [])
    inventories, warnings = inventories_of(goldens, state=state)
    plan = StagePlan(dict(goldens), resolve_selection(selection, inventories), warnings)
    if selection.shard is not None:
        from imagefactory.testrun.shard import shard_plan  # shard.py builds on this module

        plan = shard_plan(plan, selection, inventories)
    return plan


def resolve_distros(names: Sequence[str]) -> list[ResolvedSpec]:
    """`all` or distro names (aliases allowed) → their ztest specs; bad names are usage errors."""
    wanted: list[str] = []
    for name in names:
        wanted += all_distro_names() if name == "all" else [name]
    specs: list[ResolvedSpec] = []
    for name in dict.fromkeys(wanted):
        resolved = load_distro(name, lineage="ztest")
        if all(r.spec.name != resolved.spec.name for r in specs):
            specs.append(resolved)
    if not specs:
        raise UsageError("no distro to test")
    return specs


def check_selection(specs: Sequence[ResolvedSpec], selection: Selection) -> None:
    """A suite must be one the spec offers (`test.runfiles`)."""
    if selection.kind != "suite":
        return
    for resolved in specs:
        offered = resolved.spec.test.runfiles
        if selection.items[0] not in offered:
            raise UsageError(
                f"{resolved.spec.name} does not offer the {selection.items[0]} suite",
                hint=f"its test.runfiles are: {', '.join(offered)}",
            )


def plan_distros(
    specs: Sequence[ResolvedSpec],
    selection: Selection,
    store: Store,
    *,
    skip: Collection[str] = (),
) -> StagePlan:
    """Each distro's golden, and --run/--group resolved against its suite inventory: a
    name no distro knows is a UsageError here, before any clone exists."""
    goldens = {
        r.spec.name: store.get_golden(r.golden_leaf) for r in specs if r.spec.name not in skip
    }
    return plan_stage(goldens, selection)
