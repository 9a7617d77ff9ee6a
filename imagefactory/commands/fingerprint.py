"""`klab fingerprint capture|diff DISTRO`: a golden's behavioural fingerprint, and its drift.

klab fingerprint capture debian13                 from the newest quick-suite run of the
                                                  current golden; runs the quick suite
                                                  only when there is none
klab fingerprint diff debian13                    the newest fingerprint against the one
                                                  before it (same accelerator)
klab fingerprint diff debian13 --against BUILD_ID --threshold 'zio/*=50%'

A fingerprint (per-test durations of the quick suite, zio latency p50/p99 per operation,
txg sync p50/p99, ARC hit ratio, kernel, OpenZFS, accelerator) is stored in the state
directory under the golden's build id.  `diff` lists every metric that moved beyond its
threshold (default ±25 %, `--threshold PATTERN=RATIO` per metric glob, first match wins;
durations under 1 s are not compared) and exits 1 when one did.  Fingerprints of different
accelerators are never compared.  `klab rc` captures one from its gating run and puts the
drift table in summary.md and report.html (informational there).  Exit status: 0 no
drift, 1 drift, 2 usage errors (no fingerprint, unknown build, other accelerator), 3 no
golden or the quick suite could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagefactory.errors import EXIT_TEST_FAILURES, InfrastructureError, UsageError

if TYPE_CHECKING:
    from imagefactory.testrun.fingerprint_drift import Drift, Rule


def _rule(text: str) -> Rule:
    from imagefactory.testrun.fingerprint_drift import parse_rule

    try:
        return parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from imagefactory.commands.test import add_run_options

    parser = subparsers.add_parser(
        "fingerprint",
        help="capture a golden's behavioural fingerprint, or diff it against an earlier build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="fingerprint_action", metavar="ACTION", required=True)
    capture = actions.add_parser(
        "capture",
        help="record the current golden's fingerprint (quick suite only when no run exists)",
        description="Record the fingerprint of DISTRO's current ztest golden from the newest "
        "quick-suite run of it in the history; with none, run the quick suite first (the "
        "options below are `klab test`'s).",
    )
    capture.add_argument("distro", metavar="DISTRO")
    capture.add_argument(
        "--build-id", metavar="ID", help="a golden build other than the current (needs a run)"
    )
    add_run_options(capture)
    capture.set_defaults(handler=run_capture)
    diff = actions.add_parser(
        "diff",
        help="what moved since an earlier build (exit 1 on drift)",
        description="Compare DISTRO's newest fingerprint with BUILD_ID's (default: the one "
        "before it under the same accelerator). Exit 1 when a metric moved beyond its "
        "threshold.",
    )
    diff.add_argument("distro", metavar="DISTRO")
    diff.add_argument("--against", metavar="BUILD_ID", help="the build to compare with")
    diff.add_argument(
        "--threshold",
        action="append",
        type=_rule,
        default=[],
        metavar="PATTERN=RATIO",
        help="a metric glob's threshold, e.g. 'zio/*=50%%' or 'duration/*=0.4' (default ±25 %%)",
    )
    diff.add_argument("--json", action="store_true", help="print JSON")
    diff.set_defaults(handler=run_diff)


def _distro_name(text: str) -> Any:
    from imagefactory.testrun.resolve import resolve_distros

    return resolve_distros([text])[0]


def _current_build(resolved: Any, store: str | None) -> str:
    from imagefactory.store.select import open_store

    golden = open_store(store).get_golden(resolved.golden_leaf)
    if golden is None:
        raise InfrastructureError(
            f"no ztest golden {resolved.golden_leaf}: nothing to fingerprint",
            hint=f"build it with `make golden-ztest DISTRO={resolved.spec.name}`",
        )
    return str(golden.provenance.build_id)


def run_capture(args: argparse.Namespace) -> int:
    from imagefactory.commands.test import print_result, stage_options
    from imagefactory.testrun import fingerprint
    from imagefactory.testrun.history import default_db_path
    from imagefactory.testrun.selection import parse_selection
    from imagefactory.testrun.stage import run_stage

    resolved = _distro_name(args.distro)
    name = resolved.spec.name
    current = _current_build(resolved, args.store)
    build_id = args.build_id or current
    history: Path = args.history or default_db_path()
    run_dir = fingerprint.run_of_golden(history, name, build_id)
    if run_dir is None:
        if build_id != current:
            raise UsageError(
                f"no quick-suite run of {name} build {build_id} in {history}, and it is not "
                f"the current golden ({current}): it cannot be run any more"
            )
        print(f"no quick-suite run of {name} build {build_id}: running it", file=sys.stderr)
        result = run_stage(
            [resolved], parse_selection(suite="quick"), stage_options(args), report=_progress
        )
        print_result(result)
        if result.exit_status in (2, 3):
            raise InfrastructureError(
                f"the quick suite did not run on {name} (exit status {result.exit_status})",
                hint=f"see {result.run_dir}",
            )
        run_dir = result.run_dir
    captured = fingerprint.derive(run_dir, name, history=history)
    if captured["build_id"] != build_id:
        raise InfrastructureError(
            f"run {captured['run_id']} ran build {captured['build_id']}, not {build_id}"
        )
    path = fingerprint.save(captured)
    print(
        f"{name} build {build_id}: {len(captured['metrics'])} metrics from run "
        f"{captured['run_id']} ({captured['facts'].get('accel')}) -> {path}"
    )
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_diff(args: argparse.Namespace) -> int:
    from imagefactory.testrun import fingerprint
    from imagefactory.testrun.fingerprint_drift import compare, markdown, previous_of

    name = _distro_name(args.distro).spec.name
    stored = fingerprint.stored(name)
    if not stored:
        raise UsageError(f"no fingerprint of {name} yet", hint=f"klab fingerprint capture {name}")
    current = stored[-1]
    before = previous_of(stored, current, args.against)
    if before is None:
        print(
            f"{name}: build {current['build_id']} has no earlier fingerprint under "
            f"{current['facts'].get('accel')} to compare with"
        )
        return 0
    drift = compare(before, current, args.threshold)
    if drift.note and args.against:
        raise UsageError(drift.note, hint="fingerprints compare only under the same accelerator")
    if args.json:
        print(json.dumps(drift.to_json(), indent=2))
    else:
        print("\n".join(markdown([drift])).rstrip())
    return EXIT_TEST_FAILURES if drift.drifted else 0


def rc_drift(run_dir: Path, distros: Sequence[str], *, history: Path | None = None) -> list[Drift]:
    """After `klab rc`: each gated distro's fingerprint from the gating run (no extra run),
    compared with its previous build's; drift.json and summary.md's section written, the
    report rewritten.  Informational: never raises (the gate's verdict is already made)."""
    import structlog

    try:
        return _rc_drift(run_dir, distros, history)
    except Exception as exc:  # logged: a drift table must not fail a finished gate
        structlog.get_logger(__name__).warning(
            "fingerprint.rc_drift_failed", run_dir=str(run_dir), error=str(exc), exc_info=True
        )
        return []


def _rc_drift(run_dir: Path, distros: Sequence[str], history: Path | None) -> list[Drift]:
    from imagefactory.report.model import DRIFT_FILE
    from imagefactory.testrun import fingerprint
    from imagefactory.testrun.fingerprint_drift import Drift, compare, markdown, previous_of

    drifts: list[Drift] = []
    for distro in distros:
        try:
            current = fingerprint.derive(run_dir, distro, history=history)
            fingerprint.save(current)
            before = previous_of(fingerprint.stored(distro), current)
        except UsageError as exc:
            drifts.append(Drift(distro, None, None, note=f"no fingerprint: {exc}"))
            continue
        if before is None:
            drifts.append(
                Drift(
                    distro,
                    current["build_id"],
                    None,
                    note=f"no earlier build fingerprinted under {current['facts'].get('accel')}: "
                    "nothing to compare with",
                )
            )
        else:
            drifts.append(compare(before, current))
    if not drifts:
        return drifts
    (run_dir / DRIFT_FILE).write_text(
        json.dumps({"distros": [d.to_json() for d in drifts]}, indent=2) + "\n",
        encoding="utf-8",
    )
    summary = run_dir / "summary.md"
    if summary.is_file():
        with summary.open("a", encoding="utf-8") as out:
            out.write("\n" + "\n".join(markdown(drifts)))
    from imagefactory.report.render import write_run_report

    write_run_report(run_dir, history=history)
    return drifts
