"""`klab test DISTRO|all`: run the OpenZFS test suite in throw-away clones of ztest goldens.

klab test debian13 --run cli_root/zpool_create/zpool_create_001_pos
klab test debian13 --run cli_root/zpool_create_001_pos,zpool_create_002_pos   (short forms)
klab test all --group cli_root,encryption
klab test all --suite quick|linux|linux-fault --retries 2
klab test fedora44 --recipe pool-corruption-block --recipe ./my-check.sh
klab test all --rerun-failed          the unexpected failures of the last run, again

--run and --group are resolved against each golden's suite inventory before any clone is
made: a name no selected distro has is a usage error with suggestions, one that names
several tests lists them, one only some distros have is "absent" on the others.  Each
distro's golden is cloned, booted with its own seed, runs the selection as the test user
(recipes as root) with bpftrace alongside (--bpf), reruns what failed (--retries), and
brings its artifacts home to the run directory (/var/log/klab/<run-id>/<distro>/ as root);
the clone is destroyed unless --keep.  Then the matrix, summary.md, junit.xml and
report.html (`klab report`).  Exit status: 0 all as expected, 1 test failures, 2 usage or
configuration errors (no test of the selection ran anywhere), 3 infrastructure failures (no
golden, boot or collection failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory import settings
from imagefactory.commands._scale import add_scale_options
from imagefactory.errors import UsageError
from imagefactory.testrun.bpftrace_option import add_bpf_option
from imagefactory.testrun.selection import SUITES, Selection, parse_selection, rerun_selection

if TYPE_CHECKING:
    from imagefactory.testrun.durations import Durations
    from imagefactory.testrun.stage import StageOptions, StageResult

MAX_RETRIES = 5
MAX_CRASH_RETRIES = 10


def duration(text: str) -> float:
    """A --timeout value: the spec's Duration type (pydantic, imported when one is given)."""
    from pydantic import TypeAdapter, ValidationError

    from imagefactory.spec.types import Duration

    try:
        return TypeAdapter(Duration).validate_python(text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from exc


def retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {MAX_RETRIES}")
    return value


def clones(text: str) -> int:
    """--clones K: 1-64 (testrun/budget.py)."""
    from imagefactory.testrun.budget import MAX_CLONES

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_CLONES:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_CLONES}")
    return value


def crash_retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= MAX_CRASH_RETRIES:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and {MAX_CRASH_RETRIES}")
    return value


def add_run_options(parser: argparse.ArgumentParser, *, default_retries: int = 0) -> None:
    """Options `klab test` and `klab rc` share (the gate retries once by default)."""
    parser.add_argument("--jobs", type=int, help="distros at once (default: what the host allows)")
    parser.add_argument(
        "--retries",
        type=retries,
        default=default_retries,
        metavar="N",
        help=f"rerun each FAIL/KILLED test or failing recipe up to N times in the clone, "
        f"within --timeout; one that passes on a retry is flaky (0-{MAX_RETRIES}, "
        f"default {default_retries})",
    )
    parser.add_argument(
        "--timeout", type=duration, metavar="DURATION", help="for the tests in each clone (4h)"
    )
    parser.add_argument(
        "--keep",
        nargs="?",
        const="failed",
        choices=("failed", "always"),
        help="keep the clone when the distro failed (or always) and say how to reach it",
    )
    # -- clones and crashes (testrun/budget.py, clones.py, part_run.py) ----------------------
    parser.add_argument(
        "--clones",
        type=clones,
        metavar="K",
        help="split each distro's selection over K clones at once, by runfile section and "
        "recorded duration (default: what the host's VM budget leaves after --jobs)",
    )
    parser.add_argument(
        "--hang-timeout",
        type=duration,
        default=1200.0,
        metavar="DURATION",
        help="stop a clone in which no test finished for this long (default 20m; "
        "zfs-tests.sh stops a test after 10m)",
    )
    parser.add_argument(
        "--crash-retries",
        type=crash_retries,
        default=2,
        metavar="R",
        help="after a guest crash or hang, run the rest in a fresh clone up to R times (default 2)",
    )
    settings.add_store_option(parser)
    settings.add_accel_option(parser)
    settings.add_history_option(parser)
    settings.add_baseline_options(parser)
    add_scale_options(parser)  # --shard, --durations, --dry-run: commands/_scale.py
    add_bpf_option(parser)  # --bpf: testrun/bpftrace_option.py


def add_selection_options(parser: argparse.ArgumentParser, *, title: str) -> None:
    """What runs in each clone: `klab test` demands one, `klab rc` defaults to the quick suite."""
    what = parser.add_argument_group(title)
    what.add_argument("--run", action="append", metavar="TEST[,TEST]", help="tests by name")
    what.add_argument("--group", action="append", metavar="G1,G2", help="test groups")
    what.add_argument("--suite", choices=tuple(SUITES), help="a curated or upstream suite")
    what.add_argument(
        "--recipe", action="append", metavar="FILE", help="a script run as root (PASS = exit 0)"
    )


def selection_given(args: argparse.Namespace) -> bool:
    return bool(args.run or args.group or args.suite or args.recipe)


def selection_from(args: argparse.Namespace) -> Selection:
    return parse_selection(run=args.run, group=args.group, suite=args.suite, recipe=args.recipe)


def stage_options(args: argparse.Namespace) -> StageOptions:
    from imagefactory.testrun.baseline import baseline_from_args
    from imagefactory.testrun.stage import KeepPolicy, StageOptions

    keep: KeepPolicy = args.keep or "never"
    return StageOptions(
        store=args.store,
        jobs=args.jobs,
        keep=keep,
        timeout=args.timeout,
        accel=args.accel,
        history=args.history,
        command=tuple(["klab", *sys.argv[1:]]),
        retries=args.retries,
        baseline=baseline_from_args(args),
        bpf=args.bpf,
        clones=args.clones,
        durations=_clone_durations(args),
        hang_timeout=args.hang_timeout,
        crash_retries=args.crash_retries,
    )


def _clone_durations(args: argparse.Namespace) -> Durations | None:
    """What --clones balances by: --durations, else this machine's history; None for one
    clone (nothing to balance)."""
    if args.clones == 1:
        return None
    from imagefactory.commands._scale import durations_for

    return durations_for(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run the ZFS test suite in clones of the ztest goldens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("distros", nargs="+", metavar="DISTRO|all")
    add_selection_options(parser, title="what to run (exactly one)")
    parser.add_argument(
        "--rerun-failed", action="store_true", help="the last run's unexpected failures"
    )
    add_run_options(parser)
    # -- metrics: push the run's families to a pushgateway when it ends (imagefactory/metrics)
    settings.add_pushgateway_option(parser)
    parser.set_defaults(handler=run_test)


def _rerun(args: argparse.Namespace, distros: list[str]) -> tuple[Selection, list[str]] | None:
    """The union of the last run's unexpected failures on these distros, or None."""
    from imagefactory.testrun.history import History, default_db_path

    path: Path = args.history or default_db_path()
    if not path.exists():
        raise UsageError("--rerun-failed: there is no test history yet", hint=str(path))
    with History.open(path, readonly=True) as history:  # only reading: a read-only file works
        last = history.runs(last=1)
        failed = history.failed_tests()
    if not last:
        raise UsageError("--rerun-failed: the test history holds no run")
    run_id = last[0].run_id
    wanted = {d: t for d, t in failed.items() if d in distros}
    tests: list[str] = []
    for names in wanted.values():
        tests += [t for t in names if t not in tests]
    skipped = [t for t in tests if t.startswith("recipes/") or t.endswith(("/setup", "/cleanup"))]
    tests = [t for t in tests if t not in skipped]
    for name in skipped:
        print(f"not rerun: {name} (rerun recipes with --recipe, setups with --group)")
    if not tests:
        print(f"nothing to rerun: no unexpected failure in run {run_id} on {', '.join(distros)}")
        return None
    return rerun_selection(tests, run_id), [d for d in distros if d in wanted]


def print_result(result: StageResult) -> None:
    from imagefactory.testrun.matrix import build_matrix, print_matrix

    print_matrix(build_matrix(result.outcomes, selection=result.selection, wall_s=result.wall_s))
    for kept in result.kept:
        print()
        print(kept.instructions())
    print()
    print(f"run {result.run_id}: {result.run_dir}")
    for name in ("summary", "junit", "report"):
        if name in result.files:
            print(f"  {result.files[name]}")


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_test(args: argparse.Namespace) -> int:
    from imagefactory.commands._scale import dry_run, sharded
    from imagefactory.testrun.resolve import resolve_distros
    from imagefactory.testrun.stage import run_stage

    specs = resolve_distros([d for value in args.distros for d in value.split(",") if d])
    if args.rerun_failed:
        if selection_given(args):
            raise UsageError("--rerun-failed replaces --run, --group, --suite and --recipe")
        rerun = _rerun(args, [r.spec.name for r in specs])
        if rerun is None:
            return 0
        selection, names = rerun
        specs = [r for r in specs if r.spec.name in names]
    else:
        selection = selection_from(args)
    selection = sharded(args, selection)  # --shard: commands/_scale.py
    if args.dry_run:
        return dry_run(specs, selection, args)
    result = run_stage(specs, selection, stage_options(args), report=_progress)
    print_result(result)
    from imagefactory.metrics.push import push_after_run

    push_after_run(args, result.run_id, command="test")  # metrics; never changes the status
    return result.exit_status
