"""One exception family, so the CLI can turn any expected failure into a clear exit status.

Exit statuses follow the test stage's contract: 1 for a failed job, 2 for bad usage or a bad
spec, 3 for infrastructure failures (QEMU, the store, the network).
"""

from __future__ import annotations


class ImageFactoryError(Exception):
    """An expected failure with a message for humans and an optional hint on what to do."""

    exit_status = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(ImageFactoryError):
    """The user asked for something that cannot be done as asked (bad flag, unknown distro)."""

    exit_status = 2


class SpecError(UsageError):
    """A spec file is invalid; the message already carries `file:line: field: message` lines."""


class InfrastructureError(ImageFactoryError):
    """A tool, the network, the store or the hypervisor failed, not the thing under test."""

    exit_status = 3


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
    """A stage the CLI names but this version of imagefactory does not implement yet."""

    exit_status = 2
