"""What a test run runs: tests, groups, a suite, or recipes -- exactly one of them.

The selection is plain data the host checks before any clone is made (a typo is a usage
error, not a 20-minute boot that runs nothing), and its canonical text (`suite=quick`) is
what the history compares when it asks "what changed since the last run of this".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from imagefactory.errors import UsageError
from imagefactory.testrun.results import name_from_path

if TYPE_CHECKING:
    from imagefactory.testrun.shard import Shard

Kind = Literal["run", "group", "suite", "recipe"]
Mode = Literal["zts", "recipe"]

UPSTREAM_RUNFILES = ("common.run", "linux.run")
"""The suite's default on Linux; --run and --group select from these."""
SUITES: dict[str, tuple[str, ...]] = {
    "quick": ("quick.run",),
    "linux": UPSTREAM_RUNFILES,
    "linux-fault": ("linux-fault.run",),
}
_TEST = re.compile(r"[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*")


@dataclass(frozen=True, slots=True)
class Recipe:
    """A recipe to run as root in the clone: sent from the host (`source`) or the golden's."""

    name: str
    source: Path | None = None


@dataclass(frozen=True)
class Selection:
    kind: Kind
    items: tuple[str, ...]
    recipes: tuple[Recipe, ...] = field(default=())
    label: str | None = None
    """Overrides the canonical text (reruns of failures record where they came from)."""
    shard: Shard | None = field(default=None, compare=False)
    """`--shard i/N`: only that balanced part runs (testrun/shard.py); None: all of it."""

    @property
    def mode(self) -> Mode:
        return "recipe" if self.kind == "recipe" else "zts"

    @property
    def runfiles(self) -> tuple[str, ...]:
        if self.kind == "suite":
            return SUITES[self.items[0]]
        return UPSTREAM_RUNFILES if self.mode == "zts" else ()

    @property
    def unsharded(self) -> str:
        """The canonical text of the whole selection, whichever shard this is."""
        return self.label or f"{self.kind}={','.join(self.items)}"

    @property
    def canonical(self) -> str:
        """`suite=quick`, or `suite=quick shard=2/4` (the history compares like with like)."""
        if self.shard is None:
            return self.unsharded
        return f"{self.unsharded} shard={self.shard.spec}"

    def __str__(self) -> str:
        return self.canonical


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def test_name(text: str) -> str:
    """A test as the user may spell it (`tests/functional/x/y.ksh`, `x/y`, `y`) -> `x/y`."""
    name = name_from_path(text.strip().strip("/"))
    if not _TEST.fullmatch(name) or ".." in name.split("/"):
        raise UsageError(
            f"--run {text!r} is not a test name",
            hint="name tests as in the runfiles: cli_root/zpool_create/zpool_create_001_pos",
        )
    return name


def _group(text: str) -> str:
    group = text.strip().strip("/")
    if group.startswith("tests/functional/"):
        group = group.removeprefix("tests/functional/")
    if not _TEST.fullmatch(group) or ".." in group.split("/"):
        raise UsageError(f"--group {text!r} is not a group name", hint="e.g. cli_root,encryption")
    return group


def installed_recipes(root: Path | None = None) -> list[str]:
    """The recipes every ztest golden carries (hooks/payload/recipes/, without _lib.sh)."""
    from imagefactory.testrun.recipe_install import shipped_source
    from imagefactory.testrun.recipe_paths import shipped_names

    return shipped_names(shipped_source(root))


def resolve_recipe(text: str, *, hooks_root: Path | None = None) -> Recipe:
    """A path, else the user's recipes, else the shipped ones: testrun/recipe_paths.py."""
    from imagefactory.testrun.recipe_paths import RecipeSearch, find_recipe

    return find_recipe(text, RecipeSearch.default(hooks_root))


def parse_selection(
    *,
    run: list[str] | None = None,
    group: list[str] | None = None,
    suite: str | None = None,
    recipe: list[str] | None = None,
    hooks_root: Path | None = None,
) -> Selection:
    """The selection from the command line; exactly one kind must be given."""
    given = [n for n, v in (("--run", run), ("--group", group), ("--suite", suite),
                            ("--recipe", recipe)) if v]  # fmt: skip
    if len(given) != 1:
        raise UsageError(
            "give exactly one of --run, --group, --suite, --recipe"
            + (f" (got {', '.join(given)})" if given else ""),
            hint="e.g. klab test debian13 --suite quick",
        )
    if run:
        names = list(dict.fromkeys(test_name(t) for t in _split(run)))
        return Selection("run", tuple(names))
    if group:
        return Selection("group", tuple(dict.fromkeys(_group(g) for g in _split(group))))
    if suite:
        if suite not in SUITES:
            raise UsageError(f"--suite {suite}: unknown suite", hint=f"one of {', '.join(SUITES)}")
        return Selection("suite", (suite,))
    assert recipe
    recipes = [resolve_recipe(r, hooks_root=hooks_root) for r in _split(recipe)]
    names = [r.name for r in recipes]
    if len(set(names)) != len(names):
        raise UsageError(f"--recipe: two recipes share a name: {', '.join(names)}")
    return Selection("recipe", tuple(names), tuple(recipes))


def rerun_selection(tests: list[str], previous_run: str) -> Selection:
    """The failures of an earlier run, as a --run selection labelled with that run."""
    names = tuple(dict.fromkeys(test_name(t) for t in tests))
    return Selection("run", names, label=f"rerun-failed={previous_run}")
