"""Bad input and a hostile host never end `fetch`, `cache` or `seed` in a traceback: each is
one line with a hint and the documented exit status (2 input, 3 infrastructure), and
nothing is left behind.

Real parts: the CLI in a subprocess, a loopback HTTP server (pytest-httpserver) that
redirects in a loop, a 1 MiB tmpfs filled for real, and a real unprivileged user
(`setpriv --reuid nobody`) facing directories it may not read.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

REPO = Path(__file__).resolve().parents[3]
NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


def cli(
    *args: str | Path, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "IMAGEFACTORY_MIRROR"}
    base["PYTHONPATH"] = f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    base.update(env or {})
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "imagefactory", *map(str, args)],
        capture_output=True, text=True, env=base, cwd=REPO, timeout=300,
    )  # fmt: skip


def assert_one_line(proc: subprocess.CompletedProcess[str], status: int, *needles: str) -> None:
    """Exit `status`; stderr is the error line (naming each needle) and a hint, nothing more."""
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) in (1, 2) and lines[0].startswith("imagefactory: error: "), lines
    assert len(lines) == 1 or lines[1].startswith("hint: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("mirror", "why"),
    [
        ("not a url", "not an http(s) URL"),
        ("ftp://x", "not an http(s) URL"),
        ("file:///etc", "not an http(s) URL"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://mirror:99999/", "Port out of range"),
    ],
)
def test_bad_mirror_values_are_usage_errors(tmp_path: Path, mirror: str, why: str) -> None:
    cache = tmp_path / "cache"
    proc = cli("fetch", "ubuntu24", "--cache-dir", cache, "--mirror", mirror)
    assert_one_line(proc, 2, "--mirror", why)
    assert not cache.exists()  # failed before touching anything


def test_the_mirror_from_the_environment_is_checked_too(tmp_path: Path) -> None:
    proc = cli("fetch", "ubuntu24", "--cache-dir", tmp_path, env={"IMAGEFACTORY_MIRROR": "ftp://x"})
    assert_one_line(proc, 2, "$IMAGEFACTORY_MIRROR", "ftp://x")


def test_a_redirect_loop_is_one_line_exit_3(httpserver: HTTPServer, tmp_path: Path) -> None:
    def loop(request: Request) -> Response:
        return Response(status=302, headers={"Location": request.path})

    httpserver.expect_request(re.compile(".*")).respond_with_handler(loop)
    proc = cli("fetch", "ubuntu24", "--cache-dir", tmp_path / "cache", "--mirror",
               httpserver.url_for("/mirror"))  # fmt: skip
    assert_one_line(proc, 3, "redirects in a loop")
    assert len(httpserver.log) > 5  # it really followed redirects, then stopped


def fill(mount: Path) -> None:
    with (mount / "filler").open("wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()


def test_an_already_full_disk_is_one_line_and_leaves_nothing(
    httpserver: HTTPServer, tiny_fs: Path
) -> None:
    httpserver.expect_request("/mirror/SHA256SUMS").respond_with_data(
        "0" * 64 + "  noble-server-cloudimg-amd64.img\n" + "x" * 4096
    )
    cache = tiny_fs / "cache"
    (cache / "http").mkdir(parents=True)
    fill(tiny_fs)
    proc = cli("fetch", "ubuntu24", "--cache-dir", cache, "--mirror", httpserver.url_for("/mirror"))
    assert_one_line(proc, 3, "disk full")
    left = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    assert [p for p in left if not p.startswith("locks/")] == [], left


def test_a_cache_dir_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("mine")
    assert_one_line(cli("fetch", "ubuntu24", "--cache-dir", not_a_dir), 2, "not a directory")
    assert_one_line(cli("cache", "ls", "--cache-dir", not_a_dir), 2, "not a directory")
    assert_one_line(cli("cache", "gc", "--cache-dir", not_a_dir, "--max-size", "1G"), 2)
    assert not_a_dir.read_text() == "mine"


def test_an_empty_max_size_is_an_error_not_the_default(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert_one_line(cli("cache", "gc", "--cache-dir", cache, "--max-size", ""), 2, "--max-size")
    proc = cli("cache", "gc", "--cache-dir", cache, env={"IMAGEFACTORY_CACHE_MAX_SIZE": " "})
    assert_one_line(proc, 2, "$IMAGEFACTORY_CACHE_MAX_SIZE")


def test_seed_out_pointing_at_a_file(tmp_path: Path) -> None:
    target = tmp_path / "existing"
    target.write_text("keep me")
    assert_one_line(cli("seed", "debian13", "--out", target), 2, "not a directory")
    assert target.read_text() == "keep me"


@pytest.fixture
def locked_away() -> Iterator[Path]:
    """A directory `nobody` can reach, holding root's private cache and store."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to act as another user")
    base = Path(tempfile.mkdtemp(prefix="imagefactory-perm-"))
    base.chmod(0o755)
    for name in ("cache", "store"):
        (base / name).mkdir(mode=0o700)
    (base / "state").mkdir(mode=0o777)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def test_directories_without_permission(locked_away: Path) -> None:
    env = {"IMAGEFACTORY_STATE": str(locked_away / "state" / "nobody"), "HOME": "/nonexistent"}
    cache, store = locked_away / "cache", locked_away / "store"
    proc = cli("fetch", "ubuntu24", "--cache-dir", cache, env=env, prefix=NOBODY)
    assert_one_line(proc, 3, "no permission", str(cache))
    proc = cli("cache", "ls", "--cache-dir", cache, env=env, prefix=NOBODY)
    assert_one_line(proc, 3, "no permission", str(cache))
    proc = cli("status", "--store", f"file:{store}", env=env, prefix=NOBODY)
    assert_one_line(proc, 3, "no permission", str(store))
    proc = cli("gc", "--store", f"file:{store / 'sub'}", env=env, prefix=NOBODY)
    assert_one_line(proc, 3, "Permission denied", str(store / "sub"))
