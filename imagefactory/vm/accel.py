"""Choose the accelerator: KVM only when a guest really runs under it, TCG otherwise.

`/dev/kvm` existing (and QMP `query-kvm` saying enabled) proves nothing: on hosts without
working nested virtualization KVM guests hang or QEMU aborts on an MSR write.  So `auto`
boots a tiny payload under KVM (see accel_probe.S: real mode -> long mode -> serial marker)
with a few-second timeout.  The answer is cached per QEMU build, host kernel and CPU model,
because a probe that fails costs its whole timeout.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from imagefactory import settings
from imagefactory.atomic import write_atomic
from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.run import run
from imagefactory.vm.qemu_args import Accel

log = structlog.get_logger(__name__)

AccelRequest = Literal["auto", "kvm", "tcg"]
ACCEL_CHOICES: tuple[AccelRequest, ...] = ("auto", "kvm", "tcg")
PROBE_MARKER = b"IFPROBE-LONGMODE-OK"
DEFAULT_PROBE_TIMEOUT = 5.0
KVM_DEVICE = Path("/dev/kvm")

# accel_probe.S assembled (GNU as + ld, see that file); the boot signature is added below.
_PROBE_CODE = bytes.fromhex(
    "fa31c08ed88ec08ed0bc007cfcbf0010b90018f3abc70600100320c70600200330c70600308300660f0116a0"
    "7c0f20e06683c8200f22e066b8001000000f22d866b9800000c00f32660d000100000f300f20c0660d010000"
    "800f22c066ea647c0000080066b810008ed88ed0488d353300000066baf803ac84c07403eeebf8faf4ebfc8d"
    "74260090000000000000000000000000009a200000000000009200001700887c0000494650524f42452d4c4f"
    "4e474d4f44452d4f4b0d0a"
)


def probe_sector() -> bytes:
    """The 512-byte boot sector: code, zero padding, 0x55AA signature."""
    return _PROBE_CODE + bytes(510 - len(_PROBE_CODE)) + b"\x55\xaa"


@dataclass(frozen=True)
class AccelChoice:
    accel: Accel
    reason: str
    cached: bool = False


def default_cache_file() -> Path:
    return settings.user_cache_file("accel-probe.json")


def qemu_version(qemu: str) -> str:
    """The first line of `qemu --version`; it names the build (e.g. 10.0.2 Debian ...)."""
    result = run([qemu, "--version"], timeout=30, hint="install qemu-system-x86")
    return result.stdout.splitlines()[0].strip() if result.stdout else "unknown"


def cache_key(qemu: str, cpu_model: str) -> str:
    """QEMU build + host kernel + CPU model: what decides whether KVM works."""
    resolved = shutil.which(qemu) or qemu
    parts = {
        "qemu": str(Path(resolved).resolve()),
        "version": qemu_version(resolved),
        "kernel": platform.release(),
        "cpu_model": cpu_model,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _read_cache(path: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, usable: bool, detail: str) -> None:
    entries = _read_cache(path)
    entries[key] = {
        "kvm": usable,
        "detail": detail,
        "probed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(entries, indent=2, sort_keys=True) + "\n").encode())


def kvm_device_problem(device: Path = KVM_DEVICE) -> str | None:
    """Why KVM cannot even be tried, or None."""
    if not device.exists():
        return f"{device} does not exist"
    if not os.access(device, os.R_OK | os.W_OK):
        return f"{device} is not readable and writable by this user"
    return None


def probe_kvm(
    qemu: str, *, cpu_model: str = "max", timeout: float = DEFAULT_PROBE_TIMEOUT
) -> tuple[bool, str]:
    """Boot the probe sector under KVM; usable only if the marker reaches the serial port."""
    return probe_boot(qemu, "kvm", cpu_model=cpu_model, timeout=timeout)


def probe_boot(
    qemu: str, accel: Accel, *, cpu_model: str = "max", timeout: float = DEFAULT_PROBE_TIMEOUT
) -> tuple[bool, str]:
    """Boot the probe sector under `accel`; (reached long mode?, what happened)."""
    with tempfile.TemporaryDirectory(prefix="imagefactory-probe-") as tmp:
        sector = Path(tmp) / "probe.img"
        # SeaBIOS does not boot a one-sector disk: pad the image to 1 MiB (sparse).
        with sector.open("wb") as image:
            image.write(probe_sector())
            image.truncate(1024 * 1024)
        # `pc` boots a raw IDE disk from SeaBIOS without extra devices; the accelerator and
        # the CPU model are what is being tested, not the machine type.
        argv = [
            qemu, "-accel", accel, "-machine", "pc", "-cpu", cpu_model,
            "-nodefaults", "-no-user-config", "-display", "none", "-m", "64",
            "-serial", "stdio", "-drive", f"file={sector},format=raw,if=ide",
        ]  # fmt: skip
        log.debug("accel.probe.start", argv=argv, timeout=timeout)
        start = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        output = b""
        try:
            assert proc.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(proc.stdout, selectors.EVENT_READ)
                while PROBE_MARKER not in output:
                    left = timeout - (time.monotonic() - start)
                    if left <= 0 or not selector.select(left):
                        return False, f"no output from a {accel} guest within {timeout:g}s"
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        proc.wait(timeout=5)
                        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                        tail = stderr.strip().splitlines()[-1:] or ["no message"]
                        return False, f"QEMU exited {proc.returncode} under {accel}: {tail[0]}"
                    output += chunk
            return True, f"{accel} guest reached long mode in {time.monotonic() - start:.2f}s"
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


def select_accel(
    requested: AccelRequest = "auto",
    *,
    qemu: str = "qemu-system-x86_64",
    cpu_model: str = "max",
    cache_file: Path | None = None,
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
    device: Path = KVM_DEVICE,
) -> AccelChoice:
    """`kvm`/`tcg` are taken as asked; `auto` probes KVM once and remembers the answer."""
    if requested not in ACCEL_CHOICES:
        raise UsageError(f"unknown accelerator {requested!r}", hint="use auto, kvm or tcg")
    if requested == "tcg":
        return AccelChoice("tcg", "requested")
    if requested == "kvm":
        problem = kvm_device_problem(device)
        if problem is not None:
            raise InfrastructureError(f"--accel kvm: {problem}", hint="use --accel tcg")
        return AccelChoice("kvm", "requested")
    problem = kvm_device_problem(device)
    if problem is not None:
        return AccelChoice("tcg", problem)
    path = cache_file if cache_file is not None else default_cache_file()
    key = cache_key(qemu, cpu_model)
    entry = _read_cache(path).get(key)
    if isinstance(entry, dict) and isinstance(entry.get("kvm"), bool):
        usable, detail = bool(entry["kvm"]), str(entry.get("detail", ""))
        cached = True
    else:
        usable, detail = probe_kvm(qemu, cpu_model=cpu_model, timeout=probe_timeout)
        _write_cache(path, key, usable, detail)
        cached = False
    log.info("accel.probe", kvm=usable, detail=detail, cached=cached, cache=str(path))
    return AccelChoice("kvm" if usable else "tcg", detail, cached)
