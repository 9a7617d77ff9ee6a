"""`klab metrics serve|push`: the Prometheus exporter of runs and goldens, and a manual push.

klab metrics serve [--listen 127.0.0.1:9101] [--history PATH] [--store SPEC] [--runs 100]
klab metrics push RUN|last --pushgateway URL [--command test|rc] [--history PATH]

`serve` answers every scrape from the history (read-only), the store's goldens and the
newest run's bpftrace JSON, with the families the README's metrics table lists; a missing
or damaged history is `klab_history_up 0` and a log line, never a crash.  Its address is in
`<state dir>/metrics.addr` while it serves.  `push` sends one recorded run's families to a
pushgateway (what `klab test --pushgateway` does at a run's end).  Exit status: 0, 2 usage
errors (a bad --listen), 3 infrastructure (the port is taken, the gateway refuses).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.errors import UsageError

if TYPE_CHECKING:  # prometheus_client, the store, the history: only when a command runs
    from imagefactory.store.base import Store


def _window(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs between 1 and 10000")
    return int(text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="Prometheus metrics of runs and goldens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="metrics_action", metavar="ACTION", required=True)
    srv = actions.add_parser("serve", help="serve the exporter (port 9101)")
    srv.add_argument("--listen", metavar="HOST:PORT", help="address (default 127.0.0.1:9101)")
    settings.add_history_option(srv)
    settings.add_store_option(srv)
    srv.add_argument("--no-store", action="store_true", help="export no golden families")
    srv.add_argument("--runs", type=_window, metavar="N", help="runs in the window (default 100)")
    srv.set_defaults(handler=run_serve)
    push = actions.add_parser("push", help="push one recorded run to a pushgateway")
    push.add_argument("run", metavar="RUN|last")
    settings.add_pushgateway_option(push, required=True)
    push.add_argument("--command", choices=("test", "rc"), default="test")
    settings.add_history_option(push)
    push.set_defaults(handler=run_push)


def run_serve(args: argparse.Namespace) -> int:
    from imagefactory.metrics.collector import DEFAULT_WINDOW, KlabCollector
    from imagefactory.metrics.server import DEFAULT_LISTEN, serve
    from imagefactory.store.select import open_store
    from imagefactory.testrun.history import default_db_path, state_dir

    spec: str | None = args.store

    def store() -> Store:
        return open_store(spec)

    collector = KlabCollector(
        args.history or default_db_path(),
        store=None if args.no_store else store,
        window_runs=args.runs or DEFAULT_WINDOW,
    )
    return serve(
        collector,
        args.listen or DEFAULT_LISTEN,
        state_dir(),
        ready=lambda line: print(line, flush=True),
    )


def run_push(args: argparse.Namespace) -> int:
    from imagefactory.metrics.push import push_run
    from imagefactory.testrun.history import History, default_db_path, parse_run_ref

    path: Path = args.history or default_db_path()
    if not path.exists():
        raise UsageError(f"there is no test history at {path}", hint="give --history PATH")
    with History.open(path, readonly=True) as history:
        try:
            ref = parse_run_ref(args.run)
        except ValueError as exc:
            raise UsageError(f"run {args.run!r}: {exc}", hint="give a run id or last") from None
        run = history.resolve_run(ref)
    push_run(args.pushgateway, path, run.run_id, command=args.command)
    print(f"pushed run {run.run_id} to {args.pushgateway} (job=klab, command={args.command})")
    return 0
