"""Spec documents with the line of every value, so errors can say `file:line: field`.

YAML (`yaml_doc`) and HCL (`hcl_doc`) are both read into plain dicts plus a map from field
path to (file, line); the defaults layer and environment overrides keep their own origins, so
an error always points at the file (or variable) that supplied the bad value.

This module is also the one door from disk to a spec: `read_spec_text` bounds the size and
checks the encoding before any parser sees a byte, and both parsers share the structural
limits below, so a hostile file is rejected before it can make objects.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory.errors import SpecError

if TYPE_CHECKING:  # only formatted here; reading a document needs no pydantic (klab status)
    from pydantic import ValidationError

PathKey = tuple[str | int, ...]

#: Specs are a few KiB; anything near this is a mistake or an attack, not a spec.
MAX_SPEC_BYTES = 1024 * 1024
#: The deepest real spec nests about 5 levels (hooks.ztest[0].env.NAME); 32 leaves room.
MAX_DEPTH = 32
#: A real spec holds about 150 values.  The pure-Python parsers take seconds per 100,000
#: tokens, so a 1 MiB list of numbers would stall `validate` for minutes: bound the count.
MAX_VALUES = 5_000


@dataclass(frozen=True)
class Origin:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class LocatedDoc:
    """A parsed document and where each of its values came from."""

    data: dict[str, Any]
    origins: dict[PathKey, Origin] = field(default_factory=dict)
    file: str = ""

    def origin_of(self, path: PathKey) -> Origin:
        """The origin of the longest prefix of `path` that has one (missing keys → parent)."""
        for end in range(len(path), -1, -1):
            found = self.origins.get(path[:end])
            if found is not None:
                return found
        return Origin(self.file, 0)


def dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def format_validation_error(exc: ValidationError, doc: LocatedDoc) -> str:
    """One `file:line: field.path: message` line per pydantic error."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, int) or _is_field_name(part))
        origin = doc.origin_of(loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required field is missing"
        elif error["type"] == "model_type":
            message = f"must be a mapping, not {type(error['input']).__name__}"
        elif error["type"] == "string_pattern_mismatch":
            message = (
                f"{error['input']!r} is not allowed here (must match {error['ctx']['pattern']})"
            )
        lines.append(f"{origin}: {dotted(loc)}: {message}")
    return "\n".join(lines)


def _is_field_name(part: Any) -> bool:
    # pydantic puts validator names such as `function-plain[validate()]` or union member
    # tags in `loc`; they are not fields the user wrote.
    return isinstance(part, str) and "[" not in part and "(" not in part


def read_spec_text(path: Path, display: str) -> str:
    """The file's text: a regular file of at most MAX_SPEC_BYTES of UTF-8, else a SpecError.

    Opened without blocking (a FIFO named `x.yaml` must not hang `validate`), checked to be a
    regular file, and read with a bound, so the size limit holds even for a file that grows.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SpecError(f"{display}: cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SpecError(f"{display}: not a regular file")
            data = handle.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            reason = "is a directory" if exc.errno == errno.EISDIR else exc.strerror or str(exc)
            raise SpecError(f"{display}: cannot read: {reason}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            f"{display}: larger than {MAX_SPEC_BYTES // 1024} KiB; not read",
            hint="a spec is a few KiB of settings; is this the right file?",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(
            f"{display}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start})",
            hint="save the spec as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def spec_number(value: Any, where: Origin, path: PathKey) -> Any:
    """Numbers as the parsers produce them, refusing NaN and infinities (no spec field means
    them, and `plan --json` could not print them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(
            f"{where}: {dotted(path)}: {value} is not a finite number",
            hint="write a plain number such as 1800 or a string such as 30m",
        )
    return value


def too_many(where: Origin) -> SpecError:
    return SpecError(
        f"{where}: more than {MAX_VALUES} values",
        hint="a spec holds a few hundred settings; is this the right file?",
    )


def too_deep(where: Origin) -> SpecError:
    return SpecError(
        f"{where}: nested deeper than {MAX_DEPTH} levels",
        hint="a spec is a few levels of mappings and lists; is this the right file?",
    )
