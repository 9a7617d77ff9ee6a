"""Following a clone's console: a runner that never starts, and progress lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagefactory.testrun.watch import BootStalled, ConsoleWatch, GuestCrashed

TEST = (
    "50-klab-test.sh| [2026-11-22T04:33:50.666883] Test: /usr/share/zfs/zfs-tests/tests/"
    "functional/{name} (run as root) [00:35] [{result}]\n"
)
BEGIN = 'imagefactory-status: {"event":"begin","hooks":1,"uptime":132.69}\n'


def test_no_runner_within_the_allowance_is_a_stalled_boot(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("[    1.0] Linux version 6.12\n")
    watch = ConsoleWatch(console, "debian13", boot_allowance=0.3, poll=0.05)

    with pytest.raises(BootStalled, match=r"within 0\.3s"):
        asyncio.run(asyncio.wait_for(watch.run(), 10))


def test_a_started_runner_is_not_stalled_and_its_tests_are_counted(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    lines: list[str] = []
    watch = ConsoleWatch(
        console, "debian13", boot_allowance=0.3, poll=0.05, progress_every=0, report=lines.append
    )

    async def scenario() -> None:
        task = asyncio.create_task(watch.run())
        with console.open("a") as out:
            out.write(BEGIN)
            out.flush()
            await asyncio.sleep(0.2)
            out.write(TEST.format(name="a/one", result="PASS"))
            out.write(TEST.format(name="a/two", result="FAIL"))
            out.write(TEST.format(name="a/three", result="PASS")[:60])  # half a line so far
            out.flush()
            await asyncio.sleep(0.5)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())

    assert watch.begun
    assert (watch.tests, watch.failed) == (2, 1)
    assert lines[-1] == "debian13: 2 test(s) done, 1 failed, last a/two FAIL"


# --- crashes and hangs (GuestCrashed) --------------------------------------------------

PANIC = "[   81.2] Kernel panic - not syncing: sysrq triggered crash\n"


def _watch_until_raised(watch: ConsoleWatch, console: Path, lines: list[str]) -> BaseException:
    async def scenario() -> BaseException:
        task = asyncio.create_task(watch.run())
        with console.open("a") as out:
            for line in lines:
                out.write(line)
                out.flush()
                await asyncio.sleep(0.1)
        try:
            await asyncio.wait_for(task, 10)
        except (GuestCrashed, BootStalled) as exc:
            return exc
        raise AssertionError("the watch ended without raising")

    return asyncio.run(scenario())


def test_a_kernel_panic_on_the_console_is_a_crash(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    watch = ConsoleWatch(console, "debian13", boot_allowance=30, poll=0.05, crash_grace=0.2)
    error = _watch_until_raised(watch, console, [BEGIN, PANIC])
    assert isinstance(error, GuestCrashed) and not error.hung
    assert "Kernel panic - not syncing: sysrq triggered crash" in str(error)


def test_a_test_printing_bug_is_no_crash_but_silence_is_a_hang(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    watch = ConsoleWatch(
        console, "debian13", boot_allowance=30, poll=0.05, crash_grace=0.2, hang_timeout=1.0
    )
    lines = [
        BEGIN,
        "50-klab-test.sh| BUG: grep dmesg for this\n",
        TEST.format(name="a/b", result="PASS"),
    ]
    error = _watch_until_raised(watch, console, lines)
    assert isinstance(error, GuestCrashed) and error.hung
    assert watch.crash is None
    assert "no test finished for 1s (--hang-timeout)" in str(error)


def test_collecting_the_results_stops_the_hang_clock(tmp_path: Path) -> None:
    console = tmp_path / "console.log"
    console.write_text("")
    watch = ConsoleWatch(console, "debian13", boot_allowance=30, poll=0.05, hang_timeout=0.5)

    async def scenario() -> None:
        task = asyncio.create_task(watch.run())
        with console.open("a") as out:
            out.write(BEGIN + "50-klab-test.sh| klab-test: collecting the results\n")
        await asyncio.sleep(1.5)  # three hang timeouts without a test: still not a hang
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert watch.collecting
