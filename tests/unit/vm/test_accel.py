"""Accelerator choice: the probe payload really boots, and `auto` probes once per host setup."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.vm import accel
from imagefactory.vm.accel import cache_key, probe_boot, probe_sector, select_accel

QEMU = "qemu-system-x86_64"
SOURCE = Path(accel.__file__).with_name("accel_probe.S")


def need_qemu() -> None:
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed")


def test_probe_sector_is_a_boot_sector() -> None:
    sector = probe_sector()
    assert len(sector) == 512 and sector[510:] == b"\x55\xaa"
    assert accel.PROBE_MARKER in sector


def test_embedded_probe_is_the_assembled_source(tmp_path: Path) -> None:
    """The bytes in accel.py are accel_probe.S, not something else."""
    assembler, linker = shutil.which("as"), shutil.which("ld")
    if assembler is None or linker is None:
        pytest.skip("binutils (as, ld) not installed")
    obj, binary = tmp_path / "probe.o", tmp_path / "probe.bin"
    subprocess.run([assembler, "--32", "-o", str(obj), str(SOURCE)], check=True)
    subprocess.run(
        [linker, "-m", "elf_i386", "-Ttext", "0x7c00", "--oformat", "binary", "-o", str(binary),
         str(obj)],
        check=True,
    )  # fmt: skip
    assert binary.read_bytes() == probe_sector()


def test_probe_payload_reaches_long_mode_under_tcg() -> None:
    need_qemu()
    ok, detail = probe_boot(QEMU, "tcg", timeout=20)
    assert ok, detail
    assert "reached long mode" in detail


def test_probe_reports_a_qemu_that_cannot_start() -> None:
    need_qemu()
    ok, detail = probe_boot(QEMU, "tcg", cpu_model="no-such-cpu", timeout=20)
    assert not ok
    assert "QEMU exited" in detail


def test_tcg_is_taken_as_asked_without_probing(tmp_path: Path) -> None:
    choice = select_accel("tcg", cache_file=tmp_path / "cache.json")
    assert (choice.accel, choice.reason) == ("tcg", "requested")
    assert not (tmp_path / "cache.json").exists()


def test_kvm_on_request_needs_the_device(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="does not exist"):
        select_accel("kvm", device=tmp_path / "kvm")


def test_auto_without_a_kvm_device_is_tcg_without_probing(tmp_path: Path) -> None:
    choice = select_accel("auto", device=tmp_path / "kvm", cache_file=tmp_path / "cache.json")
    assert choice.accel == "tcg" and "does not exist" in choice.reason
    assert not (tmp_path / "cache.json").exists()


def test_unknown_accelerator_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        select_accel("hvf")  # type: ignore[arg-type]


def test_auto_probes_once_and_then_answers_from_the_cache(tmp_path: Path) -> None:
    need_qemu()
    if accel.kvm_device_problem() is not None:
        pytest.skip("no usable /dev/kvm to probe")
    cache = tmp_path / "cache.json"
    first = select_accel("auto", cache_file=cache, probe_timeout=3)
    assert not first.cached
    entries = json.loads(cache.read_text())
    entry = entries[cache_key(QEMU, "max")]
    assert entry["kvm"] is (first.accel == "kvm")
    second = select_accel("auto", cache_file=cache, probe_timeout=3)
    assert second.cached and second.accel == first.accel and second.reason == first.reason


def test_the_cache_key_follows_qemu_kernel_and_cpu_model() -> None:
    need_qemu()
    assert cache_key(QEMU, "max") == cache_key(QEMU, "max")
    assert cache_key(QEMU, "max") != cache_key(QEMU, "host")


def test_a_cached_answer_is_used_as_recorded(tmp_path: Path) -> None:
    """Whatever the cache says for this QEMU/kernel/CPU is the answer (no probe runs)."""
    need_qemu()
    if accel.kvm_device_problem() is not None:
        pytest.skip("no usable /dev/kvm")
    cache = tmp_path / "cache.json"
    key = cache_key(QEMU, "max")
    cache.write_text(json.dumps({key: {"kvm": True, "detail": "recorded earlier"}}))
    choice = select_accel("auto", cache_file=cache)
    assert (choice.accel, choice.reason, choice.cached) == ("kvm", "recorded earlier", True)


def test_a_corrupt_cache_is_probed_again(tmp_path: Path) -> None:
    need_qemu()
    if accel.kvm_device_problem() is not None:
        pytest.skip("no usable /dev/kvm")
    cache = tmp_path / "cache.json"
    cache.write_text("{not json")
    choice = select_accel("auto", cache_file=cache, probe_timeout=3)
    assert not choice.cached
    assert cache_key(QEMU, "max") in json.loads(cache.read_text())
