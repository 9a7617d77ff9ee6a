"""Read a crashed clone's serial console: the crash, what finished, what was running.

A guest whose kernel panics, oopses or locks up takes its results disk with it (the runner
writes it last), so the console the host captured is the only evidence left.  This module
reads it -- outside text, written by a dying kernel and by the tests: every line is handled
with plain string work and bounded, never trusted.

- A crash signature is a *kernel* line (no hook-output prefix `NN-name| `, an optional
  `[ seconds]` stamp) that starts with `Kernel panic`, `BUG:`, `Oops`, `watchdog: BUG:`
  or SPL's `PANIC at` (a failed VERIFY): a test that merely prints "BUG:" is not a crash.
- The run order: before zfs-tests.sh starts, the guest's selector prints one
  `klab-order: <section> <test>...` line per runfile section (hooks/testrun/select_tests.py),
  so the host knows which test followed the last one that finished -- the one that was
  running.  A later block (a retry's runfile) replaces the earlier one.
- zfs-tests.sh -K writes `ZTS run <path>` to the kernel log as each test (setup and
  cleanup too) starts, and it reaches the console: the last one without a result line is
  the running test, more precisely than the order (a crash in a section's setup is the
  setup's); the order is the fallback for a console without them.
- Finished tests are the suite's result lines (the shared parser, `results.parse_lines`);
  finished recipes the runner's `recipe NAME exited RC (attempt N)` lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from imagefactory.testrun.escapes import strip_escapes
from imagefactory.testrun.results import ParsedRun, name_from_path, parse_lines

SIGNATURES = ("Kernel panic", "BUG:", "Oops", "watchdog: BUG:", "PANIC at ")
"""Kernel lines that mean the guest is dead or no longer to be trusted."""
ORDER_MARK = "klab-order: "
STARTED_MARK = "ZTS run "
COLLECTING_MARK = "klab-test: collecting the results"
"""The runner's line once its tests are over (hooks/testrun/50-klab-test.sh)."""
MAX_LINE = 65536
"""Longer console lines are cut before any matching (a runaway line costs nothing)."""
EXCERPT_BEFORE = 10
EXCERPT_LINES = 60
EXCERPT_CHARS = 6000
_HOOK_PREFIX = re.compile(r"[0-9]{2}-[A-Za-z0-9_.-]{1,64}\| ")
_STAMP = re.compile(r"\[ *[0-9]{1,9}\.[0-9]{1,9}\] ?")
RECIPE_START = re.compile(r"recipe (\S{1,200}), attempt [0-9]{1,3}: ")
RECIPE_END = re.compile(r"recipe (\S{1,200}) exited (-?[0-9]{1,9}) \(attempt ([0-9]{1,3})\)")


def kernel_text(line: str) -> str | None:
    """The message of a kernel console line (stamp removed), None for hook output."""
    text = strip_escapes(line[:MAX_LINE]).strip()
    if _HOOK_PREFIX.match(text):
        return None
    stamp = _STAMP.match(text)
    return text[stamp.end() :] if stamp else text


def signature(line: str) -> str | None:
    """The crash this console line reports (the line itself), or None."""
    text = kernel_text(line)
    if text is None:
        return None
    return text if text.startswith(SIGNATURES) else None


def hook_text(line: str) -> str | None:
    """What a hook printed on this line (its `NN-name| ` prefix removed), else None."""
    text = strip_escapes(line[:MAX_LINE]).strip()
    prefix = _HOOK_PREFIX.match(text)
    return text[prefix.end() :] if prefix else None


@dataclass(frozen=True)
class ConsoleReading:
    """What a console says about a run that may have crashed."""

    crash: str | None
    """The first crash line, or None (a hang, or QEMU's own report, is said elsewhere)."""
    excerpt: str
    """The console around the crash (or its tail), for the report; bounded."""
    order: tuple[str, ...]
    """The tests in the order the guest ran them (the last selector's block)."""
    parsed: ParsedRun
    """The suite's result lines the console shows."""
    recipes_done: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Recipe name -> (exit status, attempt) of its last attempt that ended."""
    running_output: str = ""
    """What the hook printed after the last finished test (or recipe), up to the crash: the
    running recipe's output; zfs-tests.sh prints a test's output only when it ends."""
    recipe_running: str | None = None
    """The recipe whose attempt started and did not end before the crash (a retry too)."""
    started: str | None = None
    """The last test zfs-tests.sh -K announced in the kernel log (`ZTS run`) before the
    crash, when no result line followed it: the one that was running."""

    def finished(self) -> set[str]:
        return {t.key for t in self.parsed.tests} | {t.name for t in self.parsed.tests}


def read_console(text: str) -> ConsoleReading:
    lines = text.splitlines()
    crash_at: int | None = None
    order: list[str] = []
    in_block = False
    result_lines: list[str] = []
    recipes: dict[str, tuple[int, int]] = {}
    started: str | None = None
    recipe_running: str | None = None
    since: list[str] = []  # hook output since the last finished test, before the crash
    for index, raw in enumerate(lines):
        line = raw[:MAX_LINE]
        if crash_at is None and signature(line) is not None:
            crash_at = index
        said = hook_text(line)
        if said is None:
            in_block = False
            kernel = kernel_text(line) or ""
            if kernel.startswith(STARTED_MARK) and crash_at is None:
                words = kernel[len(STARTED_MARK) :].split()
                started = name_from_path(words[0]) if words else started
            continue
        if said.startswith(ORDER_MARK):
            if not in_block:
                order = []
                in_block = True
            order += said[len(ORDER_MARK) :].split()[1:]
            continue
        in_block = False
        if crash_at is None:
            since.append(said)
            del since[:-EXCERPT_LINES]
        if "Test" in said:
            result_lines.append(said)
            ran = parse_lines([said]).tests
            if ran:
                since.clear()
            if started is not None and ran and ran[0].name == started:
                started = None  # it finished
        begun = RECIPE_START.search(said)
        if begun and crash_at is None:
            recipe_running = begun.group(1)
        ended = RECIPE_END.search(said)
        if ended and crash_at is None and ended.group(1) == recipe_running:
            recipe_running = None
        if ended:
            recipes[ended.group(1)] = (int(ended.group(2)), int(ended.group(3)))
            since.clear()
    return ConsoleReading(
        crash=signature(lines[crash_at]) if crash_at is not None else None,
        excerpt=excerpt(lines, crash_at),
        order=tuple(dict.fromkeys(order)),
        parsed=parse_lines(result_lines),
        recipes_done=recipes,
        running_output="\n".join(since)[-EXCERPT_CHARS:],
        recipe_running=recipe_running,
        started=started,
    )


def excerpt(lines: Sequence[str], at: int | None) -> str:
    """A few lines before the crash and what followed it; the console's tail without one."""
    if at is None:
        chosen = lines[-EXCERPT_LINES:]
    else:
        chosen = lines[max(0, at - EXCERPT_BEFORE) : at + EXCERPT_LINES]
    text = "\n".join(strip_escapes(line[:MAX_LINE]).rstrip() for line in chosen)
    return text[-EXCERPT_CHARS:]


def running_test(reading: ConsoleReading) -> str | None:
    """The test that was running: the last one announced without a result after it (maybe
    a setup or cleanup), else the first of the run order without a result."""
    if reading.started is not None:
        return reading.started
    done = reading.finished()
    return next((t for t in reading.order if t not in done), None)


def remaining(wanted: Sequence[str], finished: Iterable[str], crashed: str | None) -> list[str]:
    """`wanted`'s tests still to run in a fresh clone: neither finished nor the one that
    crashed, in their order (the guest's selector puts each back in its section, with the
    section's setup run again)."""
    done = set(finished)
    return [t for t in wanted if t not in done and t != crashed]
