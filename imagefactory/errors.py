"""One exception family and one exit-status table, so every failure ends the same way.

The table (`EXIT_STATUSES`) is the contract the CLI, the test stage and the README share:

    0  success
    1  a test failed, or bytes failed verification (a download's checksum or signature,
       a golden's digest)
    2  usage or input: a bad flag, spec, URL, path, name or file the user gave us
    3  infrastructure: the network, a mirror, the disk, the store, QEMU, a database
    4  internal error: a bug in imagefactory (the traceback is saved, `-v` prints it)
    130  interrupted (Ctrl-C)

`classify()` is the one place where an exception becomes a one-line message, a hint and
an exit status: our own errors carry theirs; OS, network, database and validation errors
from the libraries below us are mapped here, not caught case by case in every command.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Iterable
from dataclasses import dataclass

EXIT_OK = 0
EXIT_TEST_FAILURES = 1
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

#: status → meaning, in the order the README shows them.
EXIT_STATUSES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_TEST_FAILURES: "a test failed, or bytes failed verification (a download, a golden)",
    EXIT_USAGE: "usage or input error: bad flag, spec, URL, path, name or file",
    EXIT_INFRASTRUCTURE: "infrastructure: network, mirror, disk, store, QEMU, database",
    EXIT_INTERNAL: "internal error (a bug): the traceback is saved, -v prints it",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: When several failures end one command (`golden all`, a test run over many distros), the
#: least trustworthy answer wins: a usage error means the question was wrong, an
#: infrastructure failure that it was not answered, a test failure that it was.
_PRECEDENCE = (EXIT_INTERNAL, EXIT_USAGE, EXIT_INFRASTRUCTURE, EXIT_TEST_FAILURES, EXIT_OK)


def worst_exit_status(statuses: Iterable[int]) -> int:
    """The exit status of a command whose parts ended with `statuses` (0 when none)."""
    found = set(statuses)
    for status in _PRECEDENCE:
        if status in found:
            return status
    return max(found, default=EXIT_OK)


class ImageFactoryError(Exception):
    """An expected failure with a message for humans and an optional hint on what to do."""

    exit_status = EXIT_TEST_FAILURES

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(ImageFactoryError):
    """The user asked for something that cannot be done as asked (bad flag, unknown distro)."""

    exit_status = EXIT_USAGE


class SpecError(UsageError):
    """A spec file is invalid; the message already carries `file:line: field: message` lines."""


class InfrastructureError(ImageFactoryError):
    """A tool, the network, the store or the hypervisor failed, not the thing under test."""

    exit_status = EXIT_INFRASTRUCTURE


class CommandError(InfrastructureError):
    """An external command exited non-zero; carries the argv and the tail of its stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str, *, hint: str | None = None):
        tail = "\n".join(stderr.strip().splitlines()[-20:])
        message = f"{argv[0]} exited {returncode}: {' '.join(argv)}"
        if tail:
            message += f"\n{tail}"
        super().__init__(message, hint=hint)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class NotBuiltYet(ImageFactoryError):
    """A golden whose lineage has no hooks for this distro yet (the build's seed step)."""

    exit_status = EXIT_USAGE


@dataclass(frozen=True)
class Failure:
    """What the user sees of an exception: one line, an optional hint, the exit status."""

    message: str
    hint: str | None
    exit_status: int


# errno → hint for the OS errors a user can act on.
_OS_HINTS: dict[int, str] = {
    errno.EACCES: "check the permissions, or choose another directory (--store, --cache-dir, "
    "IMAGEFACTORY_STATE)",
    errno.EPERM: "check the permissions, or run as a user allowed to do this",
    errno.EROFS: "the filesystem is read-only: choose a writable directory",
    errno.ENOSPC: "free some space (`imagefactory cache gc`, `imagefactory gc`) or choose "
    "another directory",
    errno.EDQUOT: "the disk quota is exhausted: free some space",
    errno.ENOTDIR: "a path component that must be a directory is a file",
    errno.EISDIR: "a path that must be a file is a directory",
    errno.ENOENT: "check the path exists",
    errno.EEXIST: "remove it or choose another path",
    errno.ELOOP: "a symbolic link loops, or one was refused where a real file is required",
}


def _os_failure(exc: OSError) -> Failure:
    what = exc.strerror or type(exc).__name__
    where = f": {exc.filename}" if exc.filename is not None else ""
    if exc.filename2 is not None:
        where += f" -> {exc.filename2}"
    return Failure(f"{what}{where}", _OS_HINTS.get(exc.errno or 0), EXIT_INFRASTRUCTURE)


def _requests_failure(exc: Exception) -> Failure | None:
    if "requests" not in sys.modules:  # never loaded: not its error (and not worth 100 ms)
        return None
    import requests

    if not isinstance(exc, requests.RequestException):
        return None
    url = getattr(getattr(exc, "request", None), "url", None)
    at = f" ({url})" if url else ""
    if isinstance(exc, requests.TooManyRedirects):
        return Failure(
            f"too many redirects{at}",
            "the server or mirror redirects in a loop; check the URL or the mirror's setup",
            EXIT_INFRASTRUCTURE,
        )
    bad_url = (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
    )
    if isinstance(exc, bad_url):
        return Failure(
            f"invalid URL: {exc}", "give an http:// or https:// URL with a host", EXIT_USAGE
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Failure(
        f"network error: {first[:300]}", "check the network or the mirror", EXIT_INFRASTRUCTURE
    )


def _validation_failure(exc: Exception) -> Failure | None:
    if "pydantic" not in sys.modules:  # never loaded: not its error
        return None
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return None
    errors = exc.errors(include_url=False)
    if not errors:
        return Failure(f"invalid {exc.title}", None, EXIT_USAGE)
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or exc.title
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Failure(f"{where}: {first.get('msg', 'invalid')}{more}", None, EXIT_USAGE)


def classify(exc: BaseException) -> Failure | None:
    """The failure the user sees for `exc`, or None when it is a bug (keep its traceback)."""
    if isinstance(exc, ImageFactoryError):
        return Failure(str(exc), exc.hint, exc.exit_status)
    if isinstance(exc, KeyboardInterrupt):
        return Failure("interrupted", None, EXIT_INTERRUPTED)
    if not isinstance(exc, Exception):
        return None
    found = _requests_failure(exc)  # before OSError: requests' errors are OSErrors too
    if found is not None:
        return found
    if isinstance(exc, OSError):
        return _os_failure(exc)
    if isinstance(exc, sqlite3.DatabaseError):
        return Failure(
            f"database error: {exc}",
            "the history database may be damaged: move it aside (it is recreated empty)",
            EXIT_INFRASTRUCTURE,
        )
    if isinstance(exc, UnicodeDecodeError):
        return Failure(
            f"not UTF-8 text: byte {exc.object[exc.start : exc.start + 1]!r} at offset {exc.start}",
            "save the file as UTF-8",
            EXIT_USAGE,
        )
    return _validation_failure(exc)
