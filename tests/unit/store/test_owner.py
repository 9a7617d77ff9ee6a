"""Owner tokens tell a running build from an abandoned one, even across pid reuse."""

from __future__ import annotations

import subprocess
import sys

from imagefactory.store.owner import current_owner, owner_alive, pid_alive


def test_this_process_is_alive() -> None:
    assert owner_alive(current_owner())


def test_an_exited_process_is_dead() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from imagefactory.store.owner import current_owner as c; print(c())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip()
    assert token.count(":") == 2 and token != current_owner()
    assert not owner_alive(token)
    assert not pid_alive(int(token.split(":")[1]))


def test_a_reused_pid_or_another_boot_is_dead() -> None:
    boot, pid, start = current_owner().split(":")
    assert not owner_alive(f"{boot}:{pid}:{int(start) + 1}")
    assert not owner_alive(f"another-boot:{pid}:{start}")


def test_malformed_tokens_are_dead() -> None:
    for token in ["", "x", "a:b:c", "a:-1:0", "a:1"]:
        assert not owner_alive(token)
