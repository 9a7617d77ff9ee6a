"""Refuse regular expressions whose matching time can explode: `(a+)+`, `(a|aa)*`.

Python's `re` backtracks, and a pattern that repeats a repetition (or an alternation) can
take exponential time on a short, non-matching string.  A baseline's `kernel:` regex comes
from a file anyone can pass and is matched against the guest's kernel string, so such a
pattern is refused when the file is loaded, not discovered as a hang mid-judgement.  The
check reads the pattern as Python's own parser does (`re._parser`) and is conservative:
`^6(\\.\\d+)+` is refused too, `^6\\.[0-9.]+` is not.
"""

from __future__ import annotations

import importlib
from typing import Any

_SRE_PARSER: Any = importlib.import_module("re._parser")
_SRE: Any = importlib.import_module("re._constants")
_REPEATS = {_SRE.MAX_REPEAT, _SRE.MIN_REPEAT, getattr(_SRE, "POSSESSIVE_REPEAT", None)}


def _subpatterns(arg: Any) -> list[Any]:
    """The parsed subpatterns inside an operator's argument (groups, branches, lookarounds)."""
    if hasattr(arg, "data"):
        return [arg]
    if isinstance(arg, tuple | list):
        return [sub for part in arg for sub in _subpatterns(part)]
    return []


def _nested(items: Any, *, inside: bool) -> bool:
    """`inside`: under a repetition that may match more than once."""
    for op, arg in items:
        if op in _REPEATS:
            _, most, sub = arg
            if inside and most > 1:
                return True
            if _nested(sub, inside=inside or most > 1):
                return True
        elif op is _SRE.BRANCH and inside:
            return True  # `(a|aa)+` backtracks like `(a+)+`
        elif any(_nested(sub.data, inside=inside) for sub in _subpatterns(arg)):
            return True
    return False


def backtracks_exponentially(pattern: str) -> bool:
    """Whether `pattern` (already known to compile) nests a repetition or an alternation
    inside a repetition."""
    return _nested(_SRE_PARSER.parse(pattern).data, inside=False)
