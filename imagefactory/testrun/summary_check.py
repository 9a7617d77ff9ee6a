"""Check each Results Summary against the result lines it counts.

test-runner prints one line per result and then counts them; when the two disagree, a line
went missing on the way (a serial console dropped it, a terminal escape hid it from the
parser) or the run was quiet (`-q` prints no line for a PASS).  A missing PASS is worth
reporting; a missing FAIL is worse: the run's verdict would be read from the lines and come
out green.  So the disagreement is kept, and the failures counted but never shown are
totalled apart for the verdict (`ParsedRun.unseen_failures`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

RERAN = "RERAN"
"""A flag on a result line, counted by the summary, never a result of its own."""


def summary_mismatch(
    printed: Iterable[tuple[Mapping[str, int], Mapping[str, int]]],
    *,
    failure: Callable[[str], bool],
) -> dict[str, Any] | None:
    """None when each (summary, counts of its segment's lines) pair agrees; otherwise
    `{"summary": {word: n}, "rows": {word: n}, "unseen_failures": {word: n}}` over the
    words that disagree, summed over the summaries where they do, and `segments` (1-based
    numbers of the disagreeing summaries) when more than one summary was printed.

    A word counts as an unseen failure where `failure(word)` holds and its summary counts
    more than its segment shows; each summary is compared with its own segment only, so a
    later rerun cannot hide an earlier segment's missing line.
    """
    summary: Counter[str] = Counter()
    rows: Counter[str] = Counter()
    unseen: Counter[str] = Counter()
    disagreeing: list[int] = []
    total = 0
    for number, (counted, shown) in enumerate(printed, start=1):
        total = number
        words = [w for w in {**counted, **shown} if counted.get(w, 0) != shown.get(w, 0)]
        if not words:
            continue
        disagreeing.append(number)
        for word in words:
            said, seen = counted.get(word, 0), shown.get(word, 0)
            summary[word] += said
            rows[word] += seen
            if word != RERAN and failure(word) and said > seen:
                unseen[word] += said - seen
    if not disagreeing:
        return None
    mismatch: dict[str, Any] = {
        "summary": dict(summary),
        "rows": dict(rows),
        "unseen_failures": dict(unseen),
    }
    if total > 1:
        mismatch["segments"] = disagreeing
    return mismatch
