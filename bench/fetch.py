"""Benchmark the fetch stage on loopback: download + verify vs curl, and cache-hit latency.

    .venv/bin/python bench/fetch.py [--size-mib 1024] [--repeat 3] [--hits 20] [--dir DIR]

Targets (issue 3): download + verify of a 1 GiB file reaches >= 0.9x the throughput of
``curl -o`` of the same URL in the same run, and a cache hit returns in < 50 ms without
network I/O.

The server (a separate process) sends the file with sendfile(2) from the page cache so that
the clients, not the server, are the bottleneck.  curl and imagefactory alternate in rotating
order, `--repeat` times each, writing to the same filesystem, each run starting after a sync
with no output left from the previous one; the median of each is compared.  Two imagefactory
figures are shown:
"download+verify" (Downloader.download_verified: stream, hash, compare - the target) and
"end to end" (fetch_cloud_image into a fresh cache: also fsync, atomic rename into the cache
and qemu-img info; curl does none of that).  The cache hit is fetch_cloud_image with a pinned
digest when the object is present (stat check + qemu-img info; the server is stopped first,
so any network access would fail).  CPU seconds per GiB (this process's threads, or curl's)
are printed too: on a shared, oversubscribed host they are steadier than wall-clock rates.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.download import Downloader
from imagefactory.fetch.image import fetch_cloud_image
from imagefactory.log import configure_logging
from imagefactory.spec.digest import Digest
from imagefactory.spec.source import CloudImageSource

MIB = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    file: Path

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        size = self.file.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with self.file.open("rb") as f:
            self.connection.sendfile(f, 0, size)


def _serve_forever(file: Path, urls: multiprocessing.Queue[str]) -> None:
    handler = type("Handler", (_Handler,), {"file": file})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    urls.put(f"http://{host!s}:{port}/{file.name}")
    server.serve_forever()


def serve(file: Path) -> tuple[multiprocessing.Process, str]:
    """Serve `file` from a separate process, so the server never competes for our GIL."""
    urls: multiprocessing.Queue[str] = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve_forever, args=(file, urls), daemon=True)
    process.start()
    return process, urls.get(timeout=30)


def make_file(path: Path, size: int) -> Digest:
    """Random bytes (incompressible), hashed as written; left in the page cache for the server."""
    hasher = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(64 * MIB, left))
            f.write(block)
            hasher.update(block)
            left -= len(block)
    return Digest("sha256", hasher.hexdigest())


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU used by this process (all threads) and by waited-for children (curl)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hits", type=int, default=20)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temp dir in /var/tmp)")
    args = parser.parse_args()
    configure_logging(-1, json_lines=True)  # warnings only: keep the figures readable
    curl = shutil.which("curl")
    if curl is None:
        print("curl is not installed", file=sys.stderr)
        return 2
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-fetch-", dir=args.dir or "/var/tmp") as tmp:
        work = Path(tmp)
        served = work / "image.raw"
        print(f"writing {args.size_mib} MiB test file ...", file=sys.stderr)
        digest = make_file(served, size)
        server, url = serve(served)
        source = CloudImageSource.model_validate(
            {"url": url, "format": "raw", "digest": str(digest)}
        )
        downloader = Downloader()
        out = work / "out"
        out.mkdir()

        def run_curl() -> None:
            subprocess.run([curl, "-sS", "-f", "-o", out / "curl.raw", url], check=True)

        def run_verify() -> None:
            part = out / "if.part"
            result = downloader.download_verified([url], part, digest)
            assert result.digest == digest

        def run_end_to_end() -> None:
            cache = ImageCache(out / "cache")
            result = fetch_cloud_image(source, cache, keys_dir=work, progress=False)
            assert result.downloaded

        samples: dict[str, list[float]] = {"curl": [], "verify": [], "e2e": []}
        cpu: dict[str, list[float]] = {"curl": [], "verify": [], "e2e": []}
        runs = [("curl", run_curl), ("verify", run_verify), ("e2e", run_end_to_end)]
        for i in range(args.repeat):
            # Rotate the order and start each run clean: without the sync, the previous run's
            # gigabyte of dirty pages would be written back during (and bill) the next run.
            for name, fn in runs[i % 3 :] + runs[: i % 3]:
                shutil.rmtree(out)
                out.mkdir()
                os.sync()
                before = cpu_seconds()
                seconds = timed(fn)
                samples[name].append(seconds)
                cpu[name].append((cpu_seconds() - before) * MIB * 1024 / size)
                rate = size / MIB / seconds
                print(
                    f"  run {i + 1} {name:>6}: {rate:7.0f} MiB/s, {cpu[name][-1]:.2f} CPU-s/GiB",
                    file=sys.stderr,
                )
        last_cache = out / "cache"
        if not last_cache.exists():  # the last run was not end to end: fill the cache once
            run_end_to_end()
        rates = {k: size / MIB / statistics.median(v) for k, v in samples.items()}
        ratio = rates["verify"] / rates["curl"]
        ratio_e2e = rates["e2e"] / rates["curl"]

        # Cache hit: the object from an end-to-end run; no server any more.
        server.terminate()
        server.join()
        cache = ImageCache(last_cache)
        hits = []
        for _ in range(args.hits):
            start = time.perf_counter()
            result = fetch_cloud_image(source, cache, keys_dir=work, progress=False)
            hits.append(time.perf_counter() - start)
            assert not result.downloaded
        get_only = [timed(lambda: cache.get(digest)) for _ in range(args.hits)]

    hit_ms = statistics.median(hits) * 1000
    per_gib = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"file: {args.size_mib} MiB, loopback, median of {args.repeat} runs each")
    print(f"curl -o                          {rates['curl']:7.0f} MiB/s")
    print(
        f"CPU per GiB (all threads): curl {per_gib['curl']:.2f} s, download+verify "
        f"{per_gib['verify']:.2f} s, end to end {per_gib['e2e']:.2f} s; cores: {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"imagefactory download+verify     {rates['verify']:7.0f} MiB/s   ratio {ratio:.2f}"
        "  (target >= 0.90)"
    )
    print(f"imagefactory end to end (+fsync) {rates['e2e']:7.0f} MiB/s   ratio {ratio_e2e:.2f}")
    print(
        f"cache hit (fetch_cloud_image)    median {hit_ms:.1f} ms, max {max(hits) * 1000:.1f} ms"
        "  (target < 50 ms)"
    )
    print(f"cache hit (ImageCache.get only)  median {statistics.median(get_only) * 1000:.2f} ms")
    return 0 if ratio >= 0.9 and hit_ms < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
