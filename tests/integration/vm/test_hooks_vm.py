"""Acceptance: boot the bootstrap image under QEMU, run hooks, know exactly what happened.

Each case boots its own copy-on-write overlay of the cached bootstrap image (about a minute
under TCG on an idle two-core host) and ends with the leftover check: no QEMU process,
socket or temporary file of ours may survive.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagefactory.vm.accel import select_accel
from imagefactory.vm.hookplan import Hook, HookPlan
from imagefactory.vm.provision import ProvisionResult, provision
from imagefactory.vm.qemu_args import VmConfig
from imagefactory.vm.seed import build_key_comment, build_seed, generate_ssh_key
from tests.fixtures.guest_images import guest_image
from tests.integration.vm.leftovers import Snapshot

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

HOOKS = Path(__file__).with_name("hooks")
# Generous: the two-core CI host may be busy with other guests.
BOOT_TIMEOUT = 900.0


@dataclass
class Boot:
    result: ProvisionResult
    console: str


Booter = Callable[[str, list[Hook]], Boot]


def hook(name: str, timeout: float = 120.0, **env: str) -> Hook:
    return Hook.from_file(HOOKS / name, timeout=timeout, env=env)


@pytest.fixture(scope="session")
def accel_choice() -> str:
    return select_accel("auto").accel


def booter(image: Path, accel: str, tmp_path: Path, firmware: str = "bios") -> Booter:
    """Boot an overlay of `image` with the given hooks; check for leftovers."""

    def run(name: str, hooks: list[Hook]) -> Boot:
        work = tmp_path / name
        work.mkdir()
        overlay = work / "disk.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
             "-b", str(image), str(overlay)],
            check=True,
        )  # fmt: skip
        plan = HookPlan.of(hooks)
        key = generate_ssh_key(work / "ssh", build_key_comment(name))
        seed = work / "seed.iso"
        build_seed(name=name, default_user="debian", key=key, hooks=plan).write_iso(seed)
        config = VmConfig(
            name=name,
            disk=overlay,
            seed=seed,
            accel=accel,  # type: ignore[arg-type]
            firmware=firmware,  # type: ignore[arg-type]
            boot_timeout=BOOT_TIMEOUT,
        )
        snapshot = Snapshot.take()
        result = provision(config, plan, log_dir=work / "logs")
        print(result.report())
        # Acceptance (d): whatever happened in the guest, nothing of the VM survives.
        snapshot.assert_clean(name, None)
        return Boot(result, result.console_log.read_text(errors="replace"))

    return run


@pytest.fixture
def boot(bootstrap_image: Path, accel_choice: str, tmp_path: Path) -> Booter:
    return booter(bootstrap_image, accel_choice, tmp_path)


def test_a_two_hooks_succeed_with_timings_and_a_clean_poweroff(boot: Booter) -> None:
    booted = boot("t-vm-ok", [hook("10-hello.sh", GREETING="hi there"), hook("20-second.sh")])
    result = booted.result
    assert result.ok, result.summary()
    assert [(h.name, h.state, h.rc) for h in result.hooks] == [
        ("10-hello.sh", "ok", 0),
        ("20-second.sh", "ok", 0),
    ]
    assert all(h.seconds is not None and h.seconds >= 0 for h in result.hooks)
    assert result.shutdown is not None and result.shutdown.clean
    assert result.boot_to_first_hook is not None and result.last_status_to_exit is not None
    table = result.report()
    assert "10-hello.sh" in table and "20-second.sh" in table
    assert "10-hello.sh| greeting=hi there" in booted.console
    assert "removed the build's SSH key" in booted.console


def test_b_the_second_of_three_hooks_exits_3(boot: Booter) -> None:
    booted = boot("t-vm-fail", [hook("10-hello.sh"), hook("20-exit3.sh"), hook("30-never.sh")])
    result = booted.result
    assert result.outcome == "failed" and not result.ok
    assert (result.failed_hook, result.failed_rc) == ("20-exit3.sh", 3)
    assert [h.state for h in result.hooks] == ["ok", "failed", "not-run"]
    assert "hook 30-never.sh start" not in booted.console
    assert "30-never ran" not in booted.console
    assert result.failed_output == [
        "exit3 line 1",
        "exit3 line 2",
        "exit3 line 3",
        "exit3 about to fail",
    ]
    assert "20-exit3.sh" in result.summary() and "exit status 3" in result.summary()
    assert result.console_log.is_file()
    assert result.shutdown is not None and result.shutdown.reason == "guest-shutdown"


def test_c_a_hook_past_its_timeout_is_reported_and_the_vm_stopped(boot: Booter) -> None:
    booted = boot("t-vm-timeout", [hook("10-sleep.sh", timeout=5), hook("30-never.sh")])
    result = booted.result
    assert result.outcome == "timeout"
    assert result.failed_hook == "10-sleep.sh"
    assert [h.state for h in result.hooks] == ["timeout", "not-run"]
    slept = result.hooks[0].seconds
    assert slept is not None and 5 <= slept < 60
    assert result.failed_output == ["sleeping past the timeout"]
    assert result.shutdown is not None


def test_a_uefi_guest_runs_its_hooks_under_ovmf(accel_choice: str, tmp_path: Path) -> None:
    """firmware: uefi boots through OVMF (no Secure Boot) with a private variable store."""
    image = guest_image(firmware="uefi")
    booted = booter(image, accel_choice, tmp_path, firmware="uefi")(
        "t-vm-uefi", [hook("10-hello.sh")]
    )
    assert booted.result.ok, booted.result.summary()
    assert "10-hello.sh| hello from t-vm-uefi" in booted.console
