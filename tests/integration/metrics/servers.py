"""Real servers on loopback for the metrics tests: the exporter, Prometheus, a pushgateway.

Each is started as its own process on a free port with its own temporary state, and ended by
its pid when the test ends; nothing relies on a system service.  The Debian binaries come
from `make host-deps` (prometheus, prometheus-pushgateway).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: `make host-deps` installs Debian's package")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def reachable(url: str) -> bool:
    try:
        http_get(url, timeout=2)
    except OSError:
        return False
    return True


@contextmanager
def process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def klab_env(state: Path) -> dict[str, str]:
    return {**os.environ, "IMAGEFACTORY_STATE": str(state), "PYTHONPATH": str(REPO)}


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        data = json.loads(http_get(f"{self.url}/api/v1/{path}?{query}"))
        assert data["status"] == "success", data
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result = self.api("query", query=expr)
        return list(result["result"])


@contextmanager
def prometheus(tmp: Path, target: str) -> Iterator[Prometheus]:
    """Prometheus scraping `target` every second, its data in `tmp`."""
    binary = need("prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: klab\n    static_configs:\n"
        f"      - targets: ['{target}']\n",
        encoding="utf-8",
    )
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    url = f"http://127.0.0.1:{port}"
    with process(argv, tmp / "prometheus.log") as proc:
        wait_for(
            "prometheus to be ready", lambda: proc.poll() is None and reachable(f"{url}/-/ready")
        )
        yield Prometheus(url)
