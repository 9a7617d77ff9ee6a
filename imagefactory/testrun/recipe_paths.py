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

`install_shipped` puts the shipped recipes at /usr/local/share/klab/recipes/<name>.sh, the
names the golden uses; `make install` does the same with install(1).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.atomic import temp_sibling
from imagefactory.errors import UsageError
from imagefactory.paths import hooks_dir

if TYPE_CHECKING:  # the first-run installer runs on every root start: it stays light
    from imagefactory.testrun.selection import Recipe

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
EXAMPLE = "pool-corruption-block"
"""The recipe the documentation's first-recipe walk-through copies."""


def shipped_source(hooks_root: Path | None = None) -> Path:
    """The repository's recipes: what `make install` installs and the goldens carry."""
    return (hooks_root if hooks_root is not None else hooks_dir()) / "payload" / "recipes"


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


def install_shipped(
    target: Path, source: Path | None = None, *, replace: bool = False
) -> list[Path]:
    """Copy the shipped recipes (and their library) into `target` as `<name>.sh`; files
    already there are kept unless `replace` (an admin may have edited them).  Each file
    appears whole (temporary name, rename).  Returns the files written."""
    source = source if source is not None else shipped_source()
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for file in sorted(source.glob("*.sh")):
        dest = target / file.name
        if dest.exists() and not replace:
            continue
        temp = temp_sibling(dest)
        try:
            shutil.copyfile(file, temp)
            temp.chmod(0o644 if file.name.startswith("_") else 0o755)
            temp.replace(dest)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        written.append(dest)
    return written


def install_on_first_run() -> list[Path]:
    """As root, give a host without them the shipped recipes (the first `klab` run);
    anything else, or a host that has them all, is left alone."""
    if os.geteuid() != 0:
        return []
    source = shipped_source()
    if not source.is_dir():
        return []
    target = settings.SHIPPED_RECIPES
    if all((target / p.name).exists() for p in source.glob("*.sh")):
        return []
    return install_shipped(target, source)
