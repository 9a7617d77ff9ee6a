"""The shipped recipes' place on the host: /usr/local/share/klab/recipes/<name>.sh.

`install_shipped` copies them there under the names the goldens carry (`make install` does
the same with install(1)); `install_on_first_run` lets the first `klab` run as root do it,
keeping any file an admin edited.  That check runs on every root start of the CLI, so it
is kept to three stats when nothing changed: a stamp in the target directory records that
the target was complete for this set of shipped recipes.  Its name carries the shipped
directory's mtime (a recipe added or removed there, or a reinstall, changes it) and its own
mtime is set to the target directory's, so a file created, deleted or renamed in the
target (which moves the directory's mtime) makes the next run look again.  This module
imports only the standard library and the settings: it loads on every root start.
"""

from __future__ import annotations

import os
from pathlib import Path

from imagefactory import settings
from imagefactory.paths import hooks_dir

STAMP_PREFIX = ".shipped-"
"""The stamp's name is this and the shipped directory's mtime (not `*.sh`: never a recipe)."""


def shipped_source(hooks_root: Path | None = None) -> Path:
    """The repository's recipes: what `make install` installs and the goldens carry."""
    return (hooks_root if hooks_root is not None else hooks_dir()) / "payload" / "recipes"


def install_shipped(
    target: Path, source: Path | None = None, *, replace: bool = False
) -> list[Path]:
    """Copy the shipped recipes (and their library) into `target` as `<name>.sh`; files
    already there are kept unless `replace` (an admin may have edited them).  Each file
    appears whole (temporary name, rename).  Returns the files written."""
    import shutil

    from imagefactory.atomic import temp_sibling

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


def _stamp(source: Path, target: Path) -> Path | None:
    """The stamp for this shipped directory; None when there is nothing shipped."""
    try:
        return target / f"{STAMP_PREFIX}{source.stat().st_mtime_ns}"
    except FileNotFoundError:
        return None


def _up_to_date(stamp: Path) -> bool:
    try:
        return stamp.stat().st_mtime_ns == stamp.parent.stat().st_mtime_ns
    except FileNotFoundError:
        return False


def _write_stamp(stamp: Path) -> None:
    """Replace any older stamp with `stamp`, its mtime the target directory's after the
    last change this run made there (setting a file's times does not touch the directory)."""
    for old in stamp.parent.glob(f"{STAMP_PREFIX}*"):
        if old != stamp:
            old.unlink(missing_ok=True)
    stamp.touch()
    moved = stamp.parent.stat().st_mtime_ns
    os.utime(stamp, ns=(moved, moved))


def install_on_first_run(
    source: Path | None = None, target: Path = settings.SHIPPED_RECIPES
) -> list[Path]:
    """As root, give a host without them the shipped recipes (the first `klab` run); files
    already there are kept.  Anything else, or a target unchanged since the last complete
    install of this shipped set, is left alone.  Returns the files written."""
    if os.geteuid() != 0:
        return []
    source = source if source is not None else shipped_source()
    stamp = _stamp(source, target)
    if stamp is None or _up_to_date(stamp):
        return []
    written = install_shipped(target, source)
    _write_stamp(stamp)
    return written
