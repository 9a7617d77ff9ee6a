"""Small value types shared by the spec models: durations, sizes, URLs, shell-safe names."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ByteSize, ConfigDict, Field
from pydantic import BaseModel as _PydanticBaseModel

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class StrictModel(_PydanticBaseModel):
    """Base of every spec model: unknown keys are errors and a loaded spec never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _parse_duration(value: Any) -> float:
    """Seconds from `90`, `90s`, `30m`, `1.5h`; a bare number means seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like 30m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(
                f"invalid duration {value!r}: use seconds or a string like 90s, 30m, 2h"
            )
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    else:
        raise ValueError("a duration must be a number of seconds or a string like 30m")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_parse_duration),
    Field(json_schema_extra={"description": "seconds, or a string such as 90s, 30m, 2h"}),
]


def _positive_size(value: ByteSize) -> ByteSize:
    if value <= 0:
        raise ValueError("a size must be positive")
    return value


Size = Annotated[ByteSize, AfterValidator(_positive_size)]


def _http_url(value: str) -> str:
    """Vendor and mirror URLs: http(s) with a host; ftp and file URLs are not fetched."""
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]


def _identifier(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
        raise ValueError(
            f"{value!r} must be lowercase letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]
