"""Opening the history file, for writing or only for reading, and what its errors mean.

Commands that only read (`klab history`, `baseline suggest`, `results rejudge`) open the
file with `mode=ro`, so a history on a read-only mount, in a backup or owned by another user
can still be read, and reading never writes.  A WAL-mode file whose directory cannot hold
the `-shm` index (a read-only mount) cannot be opened `mode=ro`; then, and only when no
`-wal` file exists (nothing unmerged), it is opened `immutable=1`: nobody can write there.

Every SQLite error becomes one line naming the file (`history_error`): a damaged file
(malformed page, dropped table, not a database), a lock held too long or a file that cannot
be written are infrastructure errors (exit status 3), never a traceback.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from imagefactory.errors import InfrastructureError
from imagefactory.log import get_logger

log = get_logger(__name__)  # structlog loads on first use: reading logs nothing

BUSY_TIMEOUT_S = 30.0

_READ_ONLY_HINT = (
    "reading it still works (klab history); set IMAGEFACTORY_STATE to a writable directory "
    "to record runs"
)
_DAMAGED_HINT = (
    "`sqlite3 {path} .recover` may save what is left; move the file aside and klab starts "
    "a new history"
)


def history_error(path: Path, exc: sqlite3.Error | OSError) -> InfrastructureError:
    """The one-line error for an SQLite or OS failure on the history file at `path`."""
    if isinstance(exc, OSError):
        return InfrastructureError(
            f"cannot use the test history {path}: {exc.strerror or exc}",
            hint="check the permissions, or set IMAGEFACTORY_STATE to a writable directory",
        )
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return InfrastructureError(
            f"the test history {path} is locked: {text}",
            hint=f"another klab held it for more than {BUSY_TIMEOUT_S:.0f} s; retry when it ends",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return _read_only(path, text)
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return InfrastructureError(
            f"cannot open the test history {path}: {text}",
            hint="check the file's and its directory's permissions, or set IMAGEFACTORY_STATE",
        )
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        return InfrastructureError(
            f"cannot use the test history {path}: {text}",
            hint="check the disk holding it (space, I/O errors in dmesg)",
        )
    return InfrastructureError(
        f"the test history {path} is damaged: {text}",
        hint=_DAMAGED_HINT.format(path=path),
    )


def damaged(path: Path, what: str) -> InfrastructureError:
    return InfrastructureError(
        f"the test history {path} is damaged: {what}", hint=_DAMAGED_HINT.format(path=path)
    )


def connect(path: Path) -> sqlite3.Connection:
    """A writable connection in autocommit mode (transactions are explicit), WAL, foreign keys."""
    memory = str(path) == ":memory:"
    try:
        if not memory:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (sqlite3.Error, OSError) as exc:
        raise history_error(path, exc) from exc
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        if not memory:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        conn.close()
        if not memory and not _writable(path):
            raise _read_only(path) from exc
        raise history_error(path, exc) from exc
    return conn


def _writable(path: Path) -> bool:
    """Whether this process may write the file and its directory (-wal, -shm beside it)."""
    return os.access(path.parent, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _read_only(path: Path, detail: str | None = None) -> InfrastructureError:
    why = f" ({detail})" if detail else ""
    return InfrastructureError(
        f"cannot write the test history {path}: it or its directory is read-only{why}",
        hint=_READ_ONLY_HINT,
    )


def _uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri()}?{mode}"


def _probe(conn: sqlite3.Connection) -> None:
    # Opening is lazy: the first read finds an unreadable file, the WAL index or a bad header.
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: `mode=ro`, or `immutable=1` on a read-only mount."""
    if not path.is_file():
        raise InfrastructureError(
            f"the test history {path} is not a file",
            hint="give the path of a history.sqlite written by klab",
        )
    if not os.access(path, os.R_OK):
        raise InfrastructureError(
            f"cannot read the test history {path}: permission denied",
            hint="run as its owner, or copy it somewhere you can read",
        )
    try:
        conn = sqlite3.connect(_uri(path, "mode=ro"), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise history_error(path, exc) from exc
    try:
        _probe(conn)
        return conn
    except sqlite3.Error as exc:
        conn.close()
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_CANTOPEN" or _has_wal(path):
            raise history_error(path, exc) from exc
    log.debug("history.immutable", path=str(path), why="no -shm can be created next to it")
    try:
        conn = sqlite3.connect(_uri(path, "immutable=1"), uri=True)
    except sqlite3.Error as exc:
        raise history_error(path, exc) from exc
    try:
        _probe(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise history_error(path, exc) from exc
    return conn


def _has_wal(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False
