"""`imagefactory fetch` and `imagefactory cache` as a user runs them (a real subprocess)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imagefactory.paths import distros_dir
from tests.fixtures.fault_http import Delay, FaultServer

IMAGE = "noble-server-cloudimg-amd64.img"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    work = tmp_path_factory.mktemp("img")
    (work / "disk.raw").write_bytes(os.urandom(1 << 20))
    subprocess.run(
        ["qemu-img", "convert", "-O", "qcow2", work / "disk.raw", work / "disk.qcow2"], check=True
    )
    return (work / "disk.qcow2").read_bytes()


@pytest.fixture
def spec_file(tmp_path: Path, fault_server: FaultServer, image: bytes) -> Path:
    """The ubuntu24 spec with its source pointed at the loopback server and a pinned digest."""
    fault_server.put(f"noble/current/{IMAGE}", image)
    specs = tmp_path / "distros"
    specs.mkdir()
    shutil.copy(distros_dir() / "_defaults.yaml", specs)
    spec = yaml.safe_load((distros_dir() / "ubuntu24.yaml").read_text())
    spec["source"]["cloud_image"] = {
        "url": fault_server.url(f"noble/current/{IMAGE}"),
        "format": "qcow2",
        "digest": f"sha256:{hashlib.sha256(image).hexdigest()}",
    }
    path = specs / "ubuntu24.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli_env(cache: Path) -> dict[str, str]:
    env = {**os.environ, "IMAGEFACTORY_CACHE": str(cache)}
    env.pop("IMAGEFACTORY_MIRROR", None)
    return env


def cli(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", *map(str, args)],
        env=cli_env(cache),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fetch_prints_digest_and_path_and_second_run_downloads_nothing(
    spec_file: Path, fault_server: FaultServer, image: bytes, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = cli("fetch", spec_file, cache=cache)
    assert first.returncode == 0, first.stderr
    hexdigest = hashlib.sha256(image).hexdigest()
    assert first.stdout == f"sha256:{hexdigest}  {cache / 'sha256' / hexdigest}\n"
    second = cli("fetch", spec_file, "--cache-dir", cache, cache=tmp_path / "unused")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert len(fault_server.requests_for(f"noble/current/{IMAGE}")) == 1


def test_fetch_failure_is_one_line_and_non_zero(
    spec_file: Path, fault_server: FaultServer, tmp_path: Path
) -> None:
    result = cli("fetch", spec_file, "--mirror", fault_server.url("empty"), cache=tmp_path)
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("imagefactory:")]
    assert errors == [f"imagefactory: error: HTTP 404 from {fault_server.url('empty/' + IMAGE)}"]
    assert result.stdout == ""


def test_cache_ls_gc_and_verify(spec_file: Path, tmp_path: Path, image: bytes) -> None:
    cache = tmp_path / "cache"
    assert cli("fetch", spec_file, cache=cache).returncode == 0
    listing = cli("cache", "ls", cache=cache)
    assert listing.returncode == 0
    [line] = listing.stdout.splitlines()
    assert hashlib.sha256(image).hexdigest() in line
    assert IMAGE in line  # the URL recorded in the index
    verify = cli("cache", "verify", cache=cache)
    assert (verify.returncode, verify.stdout.split()[0]) == (0, "ok")
    kept = cli("cache", "gc", "--max-size", "1GiB", cache=cache)
    assert (kept.returncode, kept.stdout) == (0, "")
    gc = cli("cache", "gc", "--max-size", "0", cache=cache)
    assert gc.returncode == 0
    assert gc.stdout.startswith("removed")
    assert cli("cache", "ls", cache=cache).stdout == ""


def test_cache_gc_rejects_a_bad_size(tmp_path: Path) -> None:
    result = cli("cache", "gc", "--max-size", "lots", cache=tmp_path)
    assert result.returncode == 2
    assert "not a size" in result.stderr


def test_two_concurrent_fetch_processes_download_once(
    spec_file: Path, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.fault(f"noble/current/{IMAGE}", Delay(3.0))  # first download stays in flight
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "imagefactory", "fetch", str(spec_file)],
            env=cli_env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]
    assert len(fault_server.requests_for(f"noble/current/{IMAGE}")) == 1
    assert any("cache.lock.wait" in err for _, err in outputs)  # one really waited
