"""The push after a run: `klab test|rc --pushgateway URL` sends the run's metrics.

A run's process ends before any scrape would see it, so its families (the run families,
its tests' verdicts, its traces; restricted to that run) are pushed to a Prometheus
pushgateway under `job=klab`, grouped by the command (`test` or `rc`): each push replaces
the previous run's group instead of piling up one group per run.  The push comes after the
run's verdict: a gateway that is down is reported in one line and never changes the exit
status the tests earned.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.error import URLError

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import push_to_gateway

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.metrics.collector import KlabCollector
from imagefactory.testrun.history import default_db_path

log = structlog.get_logger(__name__)

JOB = "klab"
PUSH_TIMEOUT_S = 30.0


def gateway_url(text: str) -> str:
    """An http(s) URL or HOST:PORT (http assumed); anything else is a usage error."""
    url = text if "://" in text else f"http://{text}"
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL or HOST:PORT")
    return url.rstrip("/")


def add_push_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pushgateway",
        type=gateway_url,
        metavar="URL",
        help="push the run's metrics to this Prometheus pushgateway when the run ends",
    )


def push_run(url: str, history: Path, run_id: str, *, command: str) -> None:
    """Push run `run_id`'s families; InfrastructureError when the gateway refuses."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(KlabCollector(history, only_run=run_id))
    try:
        push_to_gateway(
            url,
            job=JOB,
            registry=registry,
            grouping_key={"command": command},
            timeout=PUSH_TIMEOUT_S,
        )
    except (URLError, OSError, ValueError) as exc:
        raise InfrastructureError(
            f"cannot push run {run_id}'s metrics to {url}: {exc}",
            hint="is the pushgateway up? the run itself is recorded; `klab metrics push` "
            "retries it",
        ) from exc
    log.info("metrics.pushed", url=url, run_id=run_id, command=command)


def push_after_run(args: argparse.Namespace, run_id: str, *, command: str) -> None:
    """The push at a run's end when --pushgateway was given; failures are printed only."""
    url = getattr(args, "pushgateway", None)
    if not url:
        return
    history = getattr(args, "history", None) or default_db_path()
    try:
        push_run(url, history, run_id, command=command)
    except (InfrastructureError, UsageError) as exc:
        print(f"warning: {exc}", flush=True)
        return
    print(f"  metrics pushed to {url} (job={JOB}, command={command})")
