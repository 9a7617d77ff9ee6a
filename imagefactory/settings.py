"""Host settings, declared once: every environment variable, path default and shared option.

mkosi's lesson: a setting written in three places drifts in three ways.  Every environment
variable the factory reads is a `Variable` in `VARIABLES` (the README's table is rendered
from it, and a test holds the two together); every default location (root vs. XDG) is one
function here; every option that several commands share (`--store`, `--cache-dir`,
`--mirror`, `--lineage`, ...) is added to a parser by one `add_*` function, with one help
text.  Modules read a variable only through `Variable.value()`, so an empty value means
unset everywhere and a deprecated name is read, with a warning, in one place.

This module imports nothing heavy (argparse only for types): the CLI builds every parser
from it before knowing which command runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


@dataclass(frozen=True)
class Variable:
    """One environment variable: what it sets, its default, and an older name still read."""

    name: str
    meaning: str
    default: str
    deprecated_alias: str | None = None
    """A former name, read when `name` is unset, with a warning (once per process)."""

    def value(self, env: Mapping[str, str] | None = None) -> str | None:
        """The value in force, None when unset; an empty value counts as unset."""
        env = os.environ if env is None else env
        found = env.get(self.name)
        if found:
            return found
        alias = self.deprecated_alias
        if alias and env.get(alias):
            _warn_deprecated(alias, self.name)
            return env[alias]
        return None


_warned: set[str] = set()


def _warn_deprecated(alias: str, name: str) -> None:
    if alias in _warned:
        return
    _warned.add(alias)
    from imagefactory.log import stdlib_ready

    stdlib_ready()  # rendered like every other event
    logging.getLogger(__name__).warning(
        "%s is deprecated: set %s instead (it wins when both are set)", alias, name
    )


# --- the environment variables, in the order the README lists them -------------------------

HOME = Variable(
    "IMAGEFACTORY_HOME",
    "the repository data: distros/, hooks/, cloud-init/, keys/, baselines/",
    "the checkout that contains the package",
)
STATE = Variable(
    "IMAGEFACTORY_STATE",
    "the one state directory: build logs, markers, locks, crash reports, the test history "
    "(history.sqlite), run directories (runs/)",
    "/var/lib/imagefactory/state as root, else $XDG_STATE_HOME/imagefactory",
    deprecated_alias="KLAB_STATE_DIR",
)
LOG_DIR = Variable(
    "KLAB_LOG_DIR",
    "where test runs write their run directories",
    "/var/log/klab as root, else the state directory's runs/",
)
CACHE = Variable(
    "IMAGEFACTORY_CACHE",
    "the content-addressed image cache (--cache-dir)",
    "/var/cache/imagefactory as root, else $XDG_CACHE_HOME/imagefactory",
)
CACHE_MAX_SIZE = Variable(
    "IMAGEFACTORY_CACHE_MAX_SIZE",
    "the size `imagefactory cache gc` trims the cache to (--max-size)",
    "20GiB",
)
STORE = Variable(
    "IMAGEFACTORY_STORE",
    "the golden store, zfs:POOL/PATH or file:DIR (--store)",
    "zfs:rpool/vms when that dataset exists, else file: under /var/lib/imagefactory/goldens "
    "as root or $XDG_DATA_HOME/imagefactory/goldens",
)
MIRROR = Variable(
    "IMAGEFACTORY_MIRROR",
    "site mirror for vendor cloud images, checksums and signatures (--mirror)",
    "the vendors' URLs",
)
BASELINE = Variable(
    "KLAB_BASELINE",
    "baseline files or directories, ':'-separated (--baseline)",
    "the repository's baselines/",
)
DISTROS = Variable("DISTROS", "the distros `klab rc` gates (--distros)", "all")
LINEAGE = Variable(
    "KLAB_GOLDEN_KIND",
    "the lineage plan, seed and build use without --lineage: lean or ztest",
    "lean",
)
FORCE_REBUILD = Variable(
    "KLAB_FORCE_REBUILD", "1: rebuild even an up-to-date golden (--force)", "0"
)
ZFS_SOURCE = Variable(
    "KLAB_ZFS_SOURCE", "git URL of OpenZFS for a branch build", "upstream OpenZFS"
)
ZFS_BRANCH = Variable(
    "KLAB_ZFS_BRANCH",
    "build ZFS from this branch in the guest (a PR build; its golden name carries the branch)",
    "none: the spec's ZFS packages",
)
CRASH_AT = Variable(
    "IMAGEFACTORY_CRASH_AT",
    "tests only: kill the process at this named crash point of a publish",
    "unset",
)
XDG_STATE_HOME = Variable(
    "XDG_STATE_HOME", "base of the per-user state directory", "~/.local/state"
)
XDG_CACHE_HOME = Variable("XDG_CACHE_HOME", "base of the per-user cache", "~/.cache")
XDG_DATA_HOME = Variable("XDG_DATA_HOME", "base of the per-user files store", "~/.local/share")
TMPDIR = Variable("TMPDIR", "where a bootstrap assembles its image", "/var/tmp")
PYDANTIC_PLUGINS = Variable(
    "PYDANTIC_DISABLE_PLUGINS",
    "pydantic plugins not to load; the CLI sets `__all__` unless it is set (finding plugins "
    "scans every installed package's entry points on each start); set it empty to load them",
    "`__all__`",
)
NO_COLOR = Variable("NO_COLOR", "set: no colour in console logs", "colour on a terminal")
FORCE_COLOR = Variable("FORCE_COLOR", "set: colour in console logs even when piped", "unset")

VARIABLES: tuple[Variable, ...] = (
    HOME,
    STATE,
    LOG_DIR,
    CACHE,
    CACHE_MAX_SIZE,
    STORE,
    MIRROR,
    BASELINE,
    DISTROS,
    LINEAGE,
    FORCE_REBUILD,
    ZFS_SOURCE,
    ZFS_BRANCH,
    CRASH_AT,
    XDG_STATE_HOME,
    XDG_CACHE_HOME,
    XDG_DATA_HOME,
    TMPDIR,
    PYDANTIC_PLUGINS,
    NO_COLOR,
    FORCE_COLOR,
)


def markdown_table() -> str:
    """The README's environment table (`python -m imagefactory.settings` prints it)."""
    lines = ["| Variable | Sets | Default |", "|---|---|---|"]
    for var in VARIABLES:
        name = f"`{var.name}`"
        if var.deprecated_alias:
            name += f" (`{var.deprecated_alias}`, deprecated)"
        lines.append(f"| {name} | {var.meaning} | {var.default} |")
    return "\n".join(lines) + "\n"


# --- default locations: root gets the FHS directories, a user the XDG ones -----------------


def skip_pydantic_plugins() -> None:
    """No pydantic plugin scan unless the user asked for one (PYDANTIC_PLUGINS above)."""
    os.environ.setdefault(PYDANTIC_PLUGINS.name, "__all__")


def _is_root() -> bool:
    return os.geteuid() == 0


def _xdg(var: Variable, fallback: str) -> Path:
    return Path(var.value() or str(Path.home() / fallback))


def project_root() -> Path:
    """IMAGEFACTORY_HOME, else the checkout that contains this package."""
    override = HOME.value()
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """The one state directory (not created: see builder/statedir.py for the private one)."""
    override = STATE.value()
    if override:
        return Path(override)
    if _is_root():
        return Path("/var/lib/imagefactory/state")
    return _xdg(XDG_STATE_HOME, ".local/state") / "imagefactory"


def legacy_history_path() -> Path | None:
    """Where the history lived before the state directories were one (KLAB_STATE_DIR's
    defaults), when no variable names a state directory; read so an upgrade loses nothing."""
    if STATE.value() is not None:
        return None
    if _is_root():
        return Path("/var/lib/klab/history.sqlite")
    return _xdg(XDG_STATE_HOME, ".local/state") / "klab" / "history.sqlite"


def runs_dir() -> Path:
    """KLAB_LOG_DIR, else /var/log/klab as root (unless a state dir is set), else state/runs."""
    override = LOG_DIR.value()
    if override:
        return Path(override)
    if _is_root() and STATE.value() is None:
        return Path("/var/log/klab")
    return state_dir() / "runs"


def cache_dir() -> Path:
    """IMAGEFACTORY_CACHE, else /var/cache/imagefactory as root, else the XDG cache."""
    override = CACHE.value()
    if override:
        return Path(override)
    if _is_root():
        return Path("/var/cache/imagefactory")
    return _xdg(XDG_CACHE_HOME, ".cache") / "imagefactory"


def user_cache_file(name: str) -> Path:
    """A small per-user cache file (the accelerator probe), under the XDG cache."""
    return _xdg(XDG_CACHE_HOME, ".cache") / "imagefactory" / name


def files_store_dir() -> Path:
    """The default files store: /var/lib/imagefactory/goldens as root, else XDG data."""
    if _is_root():
        return Path("/var/lib/imagefactory/goldens")
    return _xdg(XDG_DATA_HOME, ".local/share") / "imagefactory" / "goldens"


SHIPPED_RECIPES = Path("/usr/local/share/klab/recipes")
"""Where `make install` (and the first `klab` run as root) puts the shipped recipes."""


def user_recipes_dir() -> Path:
    """Users' own recipes (`--recipe NAME`): /var/lib/klab/recipes as root, else XDG data."""
    if _is_root():
        return Path("/var/lib/klab/recipes")
    return _xdg(XDG_DATA_HOME, ".local/share") / "klab" / "recipes"


def scratch_dir() -> Path:
    """Where large temporary work goes (a bootstrap's image): TMPDIR, else /var/tmp."""
    return Path(TMPDIR.value() or "/var/tmp")


# --- options several commands share: declared here, added from here ------------------------

LINEAGE_CHOICES = ("lean", "ztest")
ACCEL_CHOICES = ("auto", "kvm", "tcg")
SOURCE_CHOICES = ("cloud_image", "cloud", "bootstrap")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="STORE",
        help=f"zfs:POOL/PATH or file:DIR (default: ${STORE.name}, else {STORE.default})",
    )


def add_cache_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help=f"image cache (default: ${CACHE.name}, else {CACHE.default})",
    )


def add_mirror_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror",
        metavar="BASE",
        help="site mirror: fetch BASE/<vendor file name> for the image, checksum and "
        f"signature files instead of the vendor URLs (default: ${MIRROR.name})",
    )


def add_package_mirror_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--package-mirror",
        metavar="URL",
        help="Debian package mirror for a bootstrap (default: apt's)",
    )


def add_accel_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accel",
        choices=ACCEL_CHOICES,
        default="auto",
        help="kvm, tcg, or auto: kvm when a probe shows it works (default auto)",
    )


def add_source_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--source", choices=SOURCE_CHOICES, help=help_text)


def add_history_option(parser: argparse.ArgumentParser, *flags: str, dest: str = "history") -> None:
    """The test history file: `--history PATH` (plus any older spelling in `flags`)."""
    parser.add_argument(
        "--history",
        *flags,
        dest=dest,
        type=Path,
        metavar="PATH",
        help=f"history file (default: history.sqlite in the state directory, ${STATE.name})",
    )


def add_baseline_options(parser: argparse.ArgumentParser) -> None:
    """--baseline FILE|DIR (repeatable) and --no-baseline, for every command that judges."""
    group = parser.add_argument_group("baselines (known failures and flakes)")
    group.add_argument(
        "--baseline",
        action="append",
        type=Path,
        metavar="FILE|DIR",
        help=f"judge against these instead of the repository's baselines/ (${BASELINE.name})",
    )
    group.add_argument(
        "--no-baseline",
        action="store_true",
        help="judge raw results: every FAIL or KILLED is unexpected",
    )


def add_pushgateway_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """--pushgateway URL: where a run's metrics go (metrics/push.py checks and pushes)."""

    def gateway_url(text: str) -> str:
        from imagefactory.metrics.push import gateway_url as check  # prometheus_client

        return check(text)

    parser.add_argument(
        "--pushgateway",
        type=gateway_url,
        required=required,
        metavar="URL",
        help="a Prometheus pushgateway (http(s) URL or HOST:PORT)"
        + ("" if required else ": push the run's metrics there when the run ends"),
    )


def add_lineage_option(parser: argparse.ArgumentParser, *, default: str | None = None) -> None:
    """`--lineage lean|ztest`; `--kind` (and the values regular/golden) stay accepted."""
    import argparse as _argparse  # the module is cheap; only the type import is deferred

    def lineage(text: str) -> str:
        value = LINEAGE_ALIASES.get(text.strip().lower())
        if value is None:
            raise _argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(LINEAGE_CHOICES)})"
            )
        return value

    lineage.__name__ = "lineage"
    parser.add_argument(
        "--lineage",
        dest="lineage",
        type=lineage,
        metavar="{lean,ztest}",
        default=default,
        help=f"golden lineage: lean (klab-golden-*) or ztest (klab-ztest-*) "
        f"(default: ${LINEAGE.name}, else lean)",
    )
    parser.add_argument("--kind", dest="lineage", type=lineage, help=_argparse.SUPPRESS)


LINEAGE_ALIASES: dict[str, str] = {
    "lean": "lean",
    "regular": "lean",
    "golden": "lean",
    "ztest": "ztest",
}
"""Every spelling of a lineage accepted on input, to the one the model uses."""


def lineage_name(text: str) -> str:
    """The lineage's name today for one read from a record (a golden's provenance, the
    history) written under an older spelling; anything unknown is returned unchanged."""
    return LINEAGE_ALIASES.get(text, text)


if __name__ == "__main__":
    print(markdown_table(), end="")
