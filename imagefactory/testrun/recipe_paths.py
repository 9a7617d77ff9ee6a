"""Where `--recipe NAME` finds a recipe, and the shipped recipes' place on the host.

The documented flow runs on the host:

    cp /usr/local/share/klab/recipes/pool-corruption-block.sh /var/lib/klab/recipes/my-test.sh
    klab test fedora --recipe my-test.sh

so a recipe is looked up, in this order:
1. a path (it has a `/`, or starts with `~`): that file, sent to the clone;
2. the user's recipes: /var/lib/klab/recipes/ as root, else $XDG_DATA_HOME/klab/recipes/
   (`NAME`, or `NAME.sh` when NAME has no suffix), sent to the clone;
3. the shipped recipes (hooks/payload/recipes/), which every ztest golden carries under the
   same names: run from the golden's copy.
A bare name never means a file in the current directory (`./NAME` does): what runs must
not depend on where the command was typed.

Putting the shipped recipes on the host (`make install`, the first run as root) is
testrun/recipe_install.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.errors import UsageError
from imagefactory.testrun.recipe_install import shipped_source

if TYPE_CHECKING:  # selection imports this module: Recipe is imported where used
    from imagefactory.testrun.selection import Recipe

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
EXAMPLE = "pool-corruption-block"
"""The recipe the documentation's first-recipe walk-through copies."""


def shipped_names(source: Path) -> list[str]:
    return sorted(p.stem for p in source.glob("*.sh") if not p.name.startswith("_"))


@dataclass(frozen=True)
class RecipeSearch:
    """The directories `--recipe NAME` searches, in order (user, then shipped)."""

    user: Path
    shipped: Path

    @classmethod
    def default(cls, hooks_root: Path | None = None) -> RecipeSearch:
        return cls(settings.user_recipes_dir(), shipped_source(hooks_root))


def _recipe_name(text: str, path: Path) -> str:
    name = path.name.removesuffix(".sh")
    if not _NAME.fullmatch(name):
        raise UsageError(f"--recipe {text}: the file name must be letters, digits, '.', '_' or '-'")
    return name


def _candidates(directory: Path, text: str) -> list[Path]:
    names = [text] if text.endswith(".sh") else [f"{text}.sh", text]
    return [directory / n for n in names]


def find_recipe(text: str, search: RecipeSearch) -> Recipe:
    """The recipe `--recipe text` means (see the module docstring for the order)."""
    from imagefactory.testrun.selection import Recipe

    if "/" in text or text.startswith("~"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise UsageError(f"--recipe {text}: no such file")
        return Recipe(_recipe_name(text, path), path.resolve())
    if not _NAME.fullmatch(text):
        raise UsageError(f"--recipe {text!r}: a recipe name is letters, digits, '.', '_' or '-'")
    for path in _candidates(search.user, text):
        if path.is_file():
            return Recipe(_recipe_name(text, path), path.resolve())
    shipped = shipped_names(search.shipped)
    name = text.removesuffix(".sh")
    if name in shipped:
        return Recipe(name)
    example = EXAMPLE if EXAMPLE in shipped else (shipped or ["NAME"])[0]
    raise UsageError(
        f"--recipe {text}: no such recipe in {search.user}/ nor among the shipped ones",
        hint=f"shipped: {', '.join(shipped)}; your own go in {search.user}/ "
        f"(e.g. cp {settings.SHIPPED_RECIPES}/{example}.sh {search.user}/my-test.sh), "
        "or give a path (./my-test.sh)",
    )
