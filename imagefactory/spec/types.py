"""Small value types shared by the spec models: durations, sizes, URLs, shell-safe names."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, ByteSize, ConfigDict, Field, field_validator
from pydantic import BaseModel as _PydanticBaseModel

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
#: A week: longer than any build or test run, short enough to be a number every tool takes.
MAX_DURATION = 7 * 24 * 3600.0
#: 8 EiB - 1: the largest size qemu-img and zfs accept (a signed 64-bit byte count).
MAX_SIZE = 2**63 - 1

# Control characters (C0, DEL, C1) and Unicode line separators: a value carrying one would
# split a line of the hooks' KEY=VALUE files, a log line or a terminal's display.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _control_character(value: Any, pattern: re.Pattern[str]) -> tuple[str, str] | None:
    """The first control character in a string (or in the strings of a list or mapping),
    with where it is (`in key X`, `in the value of X`, `in item N`)."""
    if isinstance(value, str):
        found = pattern.search(value)
        return (found.group(), "") if found else None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            inner = _control_character(item, pattern)
            if inner is not None:
                return inner[0], inner[1] or f" in item {index}"
    elif isinstance(value, dict):
        for key, item in value.items():
            for part, where in ((key, f" in key {key!r}"), (item, f" in the value of {key}")):
                inner = _control_character(part, pattern)
                if inner is not None:
                    return inner[0], inner[1] or where
    return None


class StrictModel(_PydanticBaseModel):
    """Base of every spec model: unknown keys are errors and a loaded spec never changes.

    Every string in a spec is one line of printable text (fields listed in
    `multiline_fields` may hold newlines and tabs): spec values travel into hook
    environments, file names, QEMU arguments and logs, and a control character there fails
    late (in `seed` or in the guest) or changes what a line means.  Checked here, once, so
    `validate`, `plan`, `seed` and `build` all refuse the same specs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    multiline_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any, info: Any) -> Any:
        multiline = info.field_name in cls.multiline_fields
        found = _control_character(value, _CONTROL_MULTILINE if multiline else _CONTROL)
        if found is not None:
            character, where = found
            raise ValueError(
                f"control character U+{ord(character):04X}{where} is not allowed"
                + ("" if multiline else " (values are single lines of text)")
            )
        return value


def _parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `30m`, `1.5h`; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like 30m")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use seconds or a string like 90s, 30m, 2h"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("a duration must be a number of seconds or a string like 30m")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_DURATION:
        raise ValueError("a duration must be positive and at most a week (7d = 168h)")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_parse_duration),
    Field(json_schema_extra={"description": "seconds, or a string such as 90s, 30m, 2h"}),
]


def _positive_size(value: ByteSize) -> ByteSize:
    if value <= 0 or value > MAX_SIZE:
        raise ValueError("a size must be positive and below 8 EiB")
    return value


Size = Annotated[ByteSize, AfterValidator(_positive_size)]


def check_http_url(value: str) -> str:
    """Vendor and mirror URLs: http(s) with a host and a valid port, no credentials, no
    spaces; ftp and file URLs are not fetched.  Raises ValueError naming what is wrong."""
    if not re.fullmatch(r"https?://[^/\s?#]+([/?#]\S*)?", value, re.IGNORECASE):
        raise ValueError(f"not an http(s) URL: {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {value!r} ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"URL has no host: {value!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"URL carries credentials; they would be logged: {value!r}")
    if port == 0:
        raise ValueError(f"URL port must be 1-65535: {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
        raise ValueError(
            f"{value!r} must be lowercase letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
