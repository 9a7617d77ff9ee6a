"""`klab rc`: the release-candidate gate -- rebuild the ztest goldens, run the quick suite.

klab rc                                  all distros, the quick suite
klab rc --distros debian13 --source bootstrap
klab rc --suite linux                    gate a major release on the upstream suite

Each chosen distro's ztest golden is force-rebuilt, then the gate's selection (the quick
suite unless --run, --group, --suite or --recipe names another) runs in a clone of each,
as `klab test DISTROS --suite quick` would, with one retry of each failing test (--retries):
one that passes on its retry is flaky, not a failure.  A distro whose rebuild fails is
reported as "not built".  The run directory gets matrix.txt, summary.md, junit.xml, run.json and
builds.json.  Exit status: 0 only when every distro built and passed; 1 unexpected test
failures, 3 infrastructure errors (not built, boot or collection failed), 2 usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from imagefactory import settings
from imagefactory.commands.test import (
    add_run_options,
    add_selection_options,
    print_result,
    selection_from,
    selection_given,
    stage_options,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rc",
        help="release gate: rebuild the ztest goldens and run the quick suite on each",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--distros",
        metavar="D1,D2",
        help=f"a subset (default: ${settings.DISTROS.name}, else all)",
    )
    settings.add_source_option(
        parser, "base images; bootstrap applies to the distros that have a bootstrap source"
    )
    parser.add_argument(
        "--no-rebuild",
        dest="rebuild",
        action="store_false",
        help="gate the goldens as they are (re-gating after a flaky run)",
    )
    settings.add_cache_dir_option(parser)
    settings.add_mirror_option(parser)
    settings.add_package_mirror_option(parser)
    add_selection_options(parser, title="what to gate on (default: --suite quick)")
    add_run_options(parser, default_retries=1)
    # -- metrics: push the run's families to a pushgateway when it ends (imagefactory/metrics)
    settings.add_pushgateway_option(parser)
    parser.set_defaults(handler=run)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from imagefactory.commands._scale import dry_run, sharded
    from imagefactory.store.select import open_store
    from imagefactory.testrun.release import RC_SELECTION, RcOptions, run_rc
    from imagefactory.testrun.resolve import plan_distros, resolve_distros

    chosen = args.distros or settings.DISTROS.value() or "all"
    specs = resolve_distros([d for d in chosen.replace(" ", ",").split(",") if d])
    source = {"cloud": "cloud_image"}.get(args.source, args.source)
    rc = RcOptions(
        source=source,
        rebuild=args.rebuild,
        cache_dir=args.cache_dir,
        site_mirror=args.mirror,
        package_mirror=args.package_mirror,
    )
    selection = selection_from(args) if selection_given(args) else RC_SELECTION
    # --shard / --dry-run (commands/_scale.py): a shard gates goldens built once and then
    # distributed, so it never rebuilds; a dry run boots and builds nothing.
    selection = sharded(args, selection)
    if args.dry_run:
        return dry_run(specs, selection, args)
    if args.shard is not None:
        rc = dataclasses.replace(rc, rebuild=False)
    options = stage_options(args)
    if rc.rebuild:
        # A mistyped --run/--group fails now, against today's goldens, not after the
        # rebuilds; the stage resolves it again against the rebuilt ones.
        plan_distros(specs, selection, open_store(options.store))
    result = run_rc(specs, rc, options, selection=selection, report=_progress)
    from imagefactory.commands.fingerprint import rc_drift

    # Fingerprints from the gating run; the drift table joins summary.md and report.html
    # (informational: never changes the exit status).
    rc_drift(result.run_dir, [o.distro for o in result.outcomes if o.tests], history=args.history)
    print_result(result)
    if "builds" in result.files:
        print(f"  {result.files['builds']}")
    from imagefactory.metrics.push import push_after_run

    push_after_run(args, result.run_id, command="rc")  # metrics; never changes the status
    return result.exit_status
