"""`klab metrics serve`: the exporter's HTTP endpoint and its address file.

While serving, `<state dir>/metrics.addr` holds `HOST:PORT` (one line) so `klab status` and
the run commands can find the exporter; it is written atomically once the socket listens
and removed on exit, but only while it still names this server (a second exporter that
took over keeps its own).  SIGTERM and SIGINT end the server cleanly.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.metrics.collector import KlabCollector

log = structlog.get_logger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9101"
ADDR_FILE = "metrics.addr"


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` into (host, port); port 0 picks a free one."""
    host, sep, port_text = text.rpartition(":")
    hint = f"give HOST:PORT, e.g. {DEFAULT_LISTEN} or [::1]:9101"
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {text!r} is not HOST:PORT", hint=hint)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise UsageError(
                f"--listen {text!r}: {host!r} is not an IP address", hint=hint
            ) from None
    return host, int(port_text)


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def write_addr(path: Path, addr: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(addr + "\n", encoding="utf-8")
    temp.replace(path)


def remove_addr(path: Path, addr: str) -> None:
    try:
        if path.read_text(encoding="utf-8").strip() == addr:
            path.unlink()
    except OSError:
        pass  # already gone, or never written: nothing of ours to remove


def serve(
    collector: KlabCollector,
    listen: str,
    state_dir: Path,
    *,
    ready: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (or `stop` is set); return the exit status (0)."""
    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise InfrastructureError(
            f"cannot listen on {listen}: {exc.strerror or exc}",
            hint="another exporter may hold the port: pick another with --listen HOST:PORT",
        ) from exc
    addr = format_addr(host, int(server.server_address[1]))
    addr_file = state_dir / ADDR_FILE
    done = stop or threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    # Signals reach the main thread only; an embedding caller stops the server with `stop`.
    main = threading.current_thread() is threading.main_thread()
    signals = (signal.SIGTERM, signal.SIGINT) if main else ()
    previous = {s: signal.signal(s, _stop) for s in signals}
    try:
        write_addr(addr_file, addr)
        log.info("metrics.serving", addr=addr, history=str(collector.history))
        ready(f"serving metrics on http://{addr}/metrics (address in {addr_file})")
        done.wait()
    except OSError as exc:
        raise InfrastructureError(
            f"cannot write {addr_file}: {exc.strerror or exc}",
            hint="set IMAGEFACTORY_STATE to a writable directory",
        ) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        remove_addr(addr_file, addr)
        log.info("metrics.stopped", addr=addr)
    return 0
