"""Owner tokens tell a running process from a dead one by the lock it holds, not its pid."""

from __future__ import annotations

import os
import subprocess
import sys

from imagefactory.store.owner import current_owner, lease_path, owner_alive, remove_dead_leases

CHILD = "from imagefactory.store.owner import current_owner as c; print(c(), flush=True)"


def test_this_process_is_alive_and_keeps_one_token() -> None:
    token = current_owner()
    assert owner_alive(token)
    assert current_owner() == token


def test_a_process_that_exits_removes_its_lease() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    token = out.stdout.strip()
    path = lease_path(token)
    assert token != current_owner() and path is not None
    assert not path.exists() and not owner_alive(token)


def test_a_killed_process_is_dead_and_its_lease_goes_at_gc() -> None:
    killed = CHILD + "\nimport os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    out = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True)
    assert out.returncode == -9
    token = out.stdout.strip()
    path = lease_path(token)
    assert path is not None and path.exists()
    assert not owner_alive(token)
    assert path in remove_dead_leases(dry_run=True) and path.exists()
    assert path in remove_dead_leases()
    assert not path.exists()
    assert lease_path(current_owner()) not in remove_dead_leases(dry_run=True)


def test_a_running_process_is_alive_until_killed() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD + "\nimport time; time.sleep(600)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        token = child.stdout.readline().strip()
        assert owner_alive(token)
    finally:
        child.kill()
        child.wait()
    assert not owner_alive(token)


def test_a_forked_child_gets_its_own_lease_and_does_not_keep_the_parents() -> None:
    parent = current_owner()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its token, then exit at once
        os.close(read)
        os.write(write, current_owner().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child != parent and owner_alive(parent) and not owner_alive(child)


def test_malformed_and_pid_tokens_are_dead_and_never_paths() -> None:
    for token in ["", "x", "a:b:c", "boot:1:0", "lease:../../etc/passwd", "lease:" + "0" * 31]:
        assert lease_path(token) is None
        assert not owner_alive(token)
