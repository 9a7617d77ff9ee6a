"""Reading a crashed clone's console (testrun/crash.py): examples and hostile input.

The fixture is a real Debian 13 clone's console from a quick-suite run (its first twenty
results, the selector's `klab-order:` lines the current runner prints, the `ZTS run` lines
zfs-tests.sh -K put in the kernel log), ended by a sysrq panic in the kernel's format; the
e2e test crashes a real guest the same way.  Every hostile case runs under a time and
memory cap (tests/fixtures/capped.py) that only catches hangs and bombs.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.testrun.crash import (
    EXCERPT_CHARS,
    read_console,
    remaining,
    running_test,
    signature,
)
from tests.fixtures.capped import run_capped

CONSOLE = Path(__file__).parents[2] / "fixtures" / "consoles" / "debian13-quick-sysrq-panic.log"
REAL = CONSOLE.read_text(encoding="utf-8")
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_real_console_names_the_panic_the_finished_tests_and_the_running_one() -> None:
    reading = read_console(REAL)

    assert reading.crash == "Kernel panic - not syncing: sysrq triggered crash"
    assert "sysrq_handle_crash" in reading.excerpt
    assert "ZTS run" in reading.excerpt  # what came just before is in the excerpt
    assert len([t for t in reading.parsed.tests if not t.name.endswith(("setup", "cleanup"))])
    assert "cli_root/zfs_create/zfs_create_001_pos" in reading.finished()
    assert running_test(reading) == "cli_root/zfs_create/zfs_create_encrypted"
    assert reading.order[:2] == ("arc/arcstats_runtime_tuning", "arc/dbufstats_001_pos")


def test_the_rest_resumes_after_the_running_test_in_order() -> None:
    reading = read_console(REAL)
    wanted = list(reading.order)

    left = remaining(wanted, reading.finished(), running_test(reading))

    assert left[0] == "cli_root/zfs_create/zfs_create_crypt_combos"  # the section goes on
    assert "cli_root/zfs_create/zfs_create_encrypted" not in left
    assert "arc/dbufstats_001_pos" not in left
    assert len(left) == len(wanted) - len({*wanted} & reading.finished()) - 1


def test_without_kmsg_markers_the_order_names_the_running_test() -> None:
    text = "\n".join(line for line in REAL.splitlines() if "ZTS run" not in line)
    reading = read_console(text)
    assert reading.started is None
    assert running_test(reading) == "cli_root/zfs_create/zfs_create_encrypted"


def test_a_crash_in_a_setup_is_the_setups() -> None:
    text = REAL.replace(
        "zfs-tests/tests/functional/cli_root/zfs_create/zfs_create_encrypted\n",
        "zfs-tests/tests/functional/cli_root/zfs_destroy/setup\n",
    )
    assert running_test(read_console(text)) == "cli_root/zfs_destroy/setup"


def test_only_kernel_lines_are_crashes() -> None:
    assert signature("[  12.000001] BUG: kernel NULL pointer dereference, address: 0") is not None
    assert signature("[ 1.5] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [z_wr_iss:9]")
    assert signature("Oops: general protection fault, probably for non-canonical address")
    assert signature("[  5.1] PANIC at zfs_vnops_os.c:1234:zfs_write()") is not None
    # a test or recipe printing the same words is hook output, not the kernel
    assert signature("50-klab-test.sh| BUG: this test greps dmesg for BUG:") is None
    assert signature("50-klab-test.sh| [  12.0] Kernel panic - not syncing: x") is None
    assert signature("[  3.2] zfs: module license 'CDDL' taints kernel.") is None


def test_recipes_are_finished_by_the_runners_exit_lines() -> None:
    text = (
        "50-klab-test.sh| 50-klab-test.sh: recipe one exited 0 (attempt 1)\n"
        "50-klab-test.sh| 50-klab-test.sh: recipe two, attempt 1: /x/two (at most 10s)\n"
        "[  9.0] Kernel panic - not syncing: sysrq triggered crash\n"
    )
    reading = read_console(text)
    assert reading.recipes_done == {"one": (0, 1)}
    assert reading.crash is not None


def test_a_console_without_a_crash_gives_its_tail() -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    reading = read_console(text)
    assert reading.crash is None
    assert reading.excerpt.endswith("line 999")
    assert len(reading.excerpt) <= EXCERPT_CHARS


# --- hostile input ---------------------------------------------------------------------

REAL_LINES = REAL.splitlines()


def _read_all(text: str) -> None:
    reading = read_console(text)
    assert len(reading.excerpt) <= EXCERPT_CHARS
    running_test(reading)
    remaining(list(reading.order), reading.finished(), None)


def _line() -> st.SearchStrategy[str]:
    prefixes = st.sampled_from(
        ["", "50-klab-test.sh| ", "[  1.0] ", "50-klab-test.sh| klab-order: "]
    )
    words = st.sampled_from(["Kernel panic", "BUG:", "Oops", "ZTS run ", "Test: ", "klab-order: "])
    return st.one_of(
        st.sampled_from(REAL_LINES),
        st.builds(lambda p, w, t: p + w + t, prefixes, words, st.text(max_size=200)),
        st.text(max_size=300),
    )


@SETTINGS
@given(st.lists(_line(), max_size=80))
def test_mixed_real_and_hostile_lines(lines: list[str]) -> None:
    run_capped(_read_all, "\n".join(lines))


@SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes_decoded_as_the_host_does(data: bytes) -> None:
    run_capped(_read_all, data.decode("utf-8", errors="replace"))


def _bombs() -> None:
    mib = 1 << 20
    for text in (
        "50-klab-test.sh| klab-order: s " + "t " * mib,  # one huge order line
        "[ 1.0] " + "BUG:" * mib,
        "\n".join(["50-klab-test.sh| klab-order: s a"] * 200_000),
        "\x1b[" * mib + "Kernel panic",
    ):
        _read_all(text)


def test_huge_lines_stay_bounded() -> None:
    run_capped(_bombs, seconds=120)
