"""The history commands' small values, parsed from the command line with range checks.

Each parser raises `ValueError` with the reason; `argparse_type` turns one into an argparse
`type=` so a bad value exits 2 with one line naming the option, and a value SQLite cannot
hold (`--last 100000000000000000000`) never reaches it.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

MAX_RUNS = 100_000
"""The most runs a window (`--last`) may span: far more than a history holds."""

_INT = re.compile(r"(?P<sign>[+-]?)(?P<digits>[0-9]+)")
_RATIO = re.compile(r"(?P<num>[0-9]{1,9}(?:\.[0-9]{1,9})?|\.[0-9]{1,9})(?P<pct>\s?%)?")
_SECONDS = re.compile(r"(?P<num>[0-9]{1,9}(?:\.[0-9]{1,9})?)(?P<unit>ms|s|m|h)?")
_SECONDS_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_LAST = re.compile(r"last(?:~(?P<back>[0-9]{1,9}))?")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


def parse_count(text: str, *, low: int = 1, high: int = MAX_RUNS) -> int:
    """A whole number in [low, high]: `--last 100`."""
    match = _INT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a whole number")
    digits = match["digits"].lstrip("0") or "0"
    if len(digits) > len(str(high)):  # never build a huge int from hostile text
        number = None
    else:
        number = int(digits) * (-1 if match["sign"] == "-" else 1)
    if match["sign"] == "-" and (number is None or number < low):
        raise ValueError(f"{text.strip()} is too small (at least {low})")
    if number is None or number > high:
        raise ValueError(f"{text.strip()} is too large (at most {high})")
    if number < low:
        raise ValueError(f"{number} is too small (at least {low})")
    return number


def parse_ratio(text: str, *, high: float = 1.0) -> float:
    """A share: `5%` or a fraction below 1 (`0.05`), at most `high` (1.0 is 100 %).

    A bare number of 1 or more is refused: `--min-rate 5` could mean 5 % or 500 %.
    """
    match = _RATIO.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a percentage (5%) or a fraction (0.05)")
    number = float(match["num"])
    if match["pct"]:
        number /= 100.0
    elif number >= 1.0:
        raise ValueError(f"{text} is ambiguous: write {match['num']}% or a fraction below 1")
    if not math.isfinite(number) or number > high:
        raise ValueError(f"{text} is too large (at most {high * 100:g}%)")
    return number


def parse_seconds(text: str, *, high: float = 86_400.0) -> float:
    """A non-negative duration: `5`, `5s`, `1.5m`, `250ms`; at most a day."""
    match = _SECONDS.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration (5, 5s, 1.5m, 250ms)")
    seconds = float(match["num"]) * _SECONDS_UNITS[match["unit"]]
    if seconds > high:
        raise ValueError(f"{text} is too long (at most {high:g} s)")
    return seconds


@dataclass(frozen=True, slots=True)
class RunRef:
    """How a command names a stored run: `last`, `last~N` (N runs before it), or a run id
    or a unique prefix of one (`20260422T0334`)."""

    text: str
    back: int | None = None
    """Runs back from the newest (`last` is 0); None for an id or a prefix."""


def parse_run_ref(text: str) -> RunRef:
    value = text.strip()
    last = _LAST.fullmatch(value)
    if last is not None:
        back = int(last["back"] or 0)
        if back >= MAX_RUNS:
            raise ValueError(f"{text}: at most last~{MAX_RUNS - 1}")
        return RunRef(value, back)
    if not _RUN_ID.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a run id: letters, digits and . _ : + - (as `klab history` shows "
            "them), or last, last~N"
        )
    return RunRef(value)


def argparse_type(parse: Callable[[str], T], name: str) -> Callable[[str], T]:
    """`parse` as an argparse `type=`: ValueError becomes argparse's one-line error."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = name  # argparse names the type in its fallback message
    return convert
