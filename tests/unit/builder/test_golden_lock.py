"""One build per golden: a second one queues or fails naming the holder; a dead holder
leaves nothing locked.  The holder is a real second process (flock is per open file)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagefactory.builder.lock import BuildLocked, golden_lock
from imagefactory.errors import EXIT_INFRASTRUCTURE, InfrastructureError

HOLD = """
import sys, time
from pathlib import Path
from imagefactory.builder.lock import golden_lock
with golden_lock("klab-ztest-debian", directory=Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    (Path(sys.argv[1]).parent / "releasing").touch()
"""


def locks_in(tmp_path: Path) -> Path:
    """The lock directory; `hold` leaves its marker next to it, not in it."""
    locks = tmp_path / "locks"
    locks.mkdir()
    return locks


def hold(directory: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_build_without_wait_fails_naming_the_holder(tmp_path: Path) -> None:
    locks = locks_in(tmp_path)
    holder = hold(locks, 30)
    try:
        with (
            pytest.raises(BuildLocked, match=f"pid {holder.pid}") as caught,
            golden_lock("klab-ztest-debian", wait=False, directory=locks),
        ):
            pass
        # Someone else's build holds the golden: the host's state, not the input's fault.
        assert isinstance(caught.value, InfrastructureError)
        assert caught.value.exit_status == EXIT_INFRASTRUCTURE
    finally:
        holder.kill()
        holder.wait()


def test_a_second_build_waits_for_the_first_then_holds_it(tmp_path: Path) -> None:
    locks = locks_in(tmp_path)
    holder = hold(locks, 1.5)
    started = time.monotonic()
    with golden_lock("klab-ztest-debian", directory=locks):
        waited = time.monotonic() - started
        # The holder marks the moment before it lets go: we cannot be in here earlier.
        assert (tmp_path / "releasing").exists(), "got the lock while the first build held it"
        assert (locks / "klab-ztest-debian.lock").read_text() == f"pid {os.getpid()}\n"
    holder.wait()
    assert waited > 1.0
    # Released and removed: nothing is left behind.
    assert list(locks.iterdir()) == []


def test_a_killed_holder_leaves_the_golden_unlocked(tmp_path: Path) -> None:
    locks = locks_in(tmp_path)
    holder = hold(locks, 60)
    holder.kill()
    holder.wait()
    # Its lock file stays (kill -9 runs no cleanup), but nobody holds it.
    assert (locks / "klab-ztest-debian.lock").exists()
    with golden_lock("klab-ztest-debian", wait=False, directory=locks):
        pass


def test_two_waiters_in_one_process_take_turns(tmp_path: Path) -> None:
    order: list[str] = []

    def build(name: str) -> None:
        with golden_lock("klab-ztest-debian", directory=tmp_path):
            order.append(f"{name} in")
            time.sleep(0.3)
            order.append(f"{name} out")

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(order) == 4
    assert order[0].split()[0] == order[1].split()[0] and order[1].endswith("out")
