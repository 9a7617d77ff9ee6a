"""`--shard i/N`, `--durations FILE` and `--dry-run` for `klab test` and `klab rc`.

Declared here, apart from the other run options, so both commands share one definition:
`add_scale_options` adds them, `sharded` turns the selection into its shard, `dry_run`
prints the split without booting anything.  Without `--durations` the split is weighed
with this machine's history (its digest is printed and recorded): every machine of a CI
matrix must then have the same history, which is why the shipped workflow passes a file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from imagefactory.errors import UsageError

if TYPE_CHECKING:  # the CLI's parser is built without them (tests/unit/cli/test_cli_imports.py)
    from imagefactory.spec.loader import ResolvedSpec
    from imagefactory.testrun.durations import Durations
    from imagefactory.testrun.selection import Selection
    from imagefactory.testrun.shard import DistroSplit, ShardSpec


def shard_spec(text: str) -> ShardSpec:
    """`--shard I/N` for argparse: a bad value is its one-line usage error (exit 2)."""
    from imagefactory.testrun.shard import parse_shard

    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    scale = parser.add_argument_group("scale out (docs/scale.md)")
    scale.add_argument(
        "--shard",
        type=shard_spec,
        metavar="I/N",
        help="run only the I-th of N parts, balanced by recorded duration (1 <= I <= N)",
    )
    scale.add_argument(
        "--durations",
        type=Path,
        metavar="FILE",
        help="balance shards (and klab test's clones) with this snapshot "
        "(klab history --export-durations), not the history",
    )
    scale.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved selection and each part's sections and expected time; "
        "boot nothing",
    )


def durations_for(args: argparse.Namespace) -> Durations:
    """The snapshot given, else this machine's history (empty when there is none)."""
    from imagefactory.testrun.durations import Durations, from_history, load_snapshot
    from imagefactory.testrun.history import History, default_db_path

    if args.durations is not None:
        return load_snapshot(args.durations)
    path: Path = args.history or default_db_path()
    if not path.exists():
        return Durations(source="no history")
    with History.open(path, readonly=True) as history:
        return from_history(history.conn, source=f"history {path}")


def sharded(args: argparse.Namespace, selection: Selection) -> Selection:
    """`selection` cut to `--shard`, or as it is."""
    from imagefactory.testrun.shard import Shard

    if args.shard is None:
        # `klab test` balances its clones by the snapshot too (unless --clones 1); `klab rc`
        # has no --clones: there the snapshot only cuts shards and dry runs.
        balances_clones = getattr(args, "clones", 1) != 1
        if args.durations is not None and not args.dry_run and not balances_clones:
            raise UsageError(
                "--durations applies to --shard, --clones K (K > 1) and --dry-run",
                hint="drop --durations, or add --shard i/N",
            )
        return selection
    durations = durations_for(args)
    if args.durations is None and args.shard.count > 1:
        print(
            f"warning: --shard without --durations: balanced by {durations.source} "
            f"({durations.digest[:19]}); every shard must see the same numbers",
            file=sys.stderr,
        )
    return dataclasses.replace(selection, shard=Shard(args.shard, durations))


def _section_label(name: str) -> str:
    return name.removeprefix("tests/functional/")


def _print_split(distro: str, split: DistroSplit, mine: int | None, *, unit: str = "part") -> None:
    from imagefactory.testrun.matrix import format_duration

    done = split.assignment
    tests = sum(len(s.tests) for s in split.sections)
    guess = " (estimated: no test of it has a recorded time; split by count)" * split.estimated
    print(
        f"{distro}: {tests} test(s) in {len(split.sections)} section(s), "
        f"{len(done.parts)} {unit}(s); longest {format_duration(done.makespan_ms / 1000)}, "
        f"lower bound {format_duration(done.lower_bound_ms / 1000)}{guess}"
    )
    if split.absent:
        print(f"  absent in this suite: {', '.join(split.absent)}")
    for part in done.parts:
        this = " (this shard)" if part.index == mine else ""
        if not part.tests and unit == "clone":
            print(f"  clone {part.index}: nothing (fewer sections than clones): not booted")
            continue
        print(
            f"  {unit} {part.index}{this}: {format_duration(part.expected_ms / 1000)}, "
            f"{len(part.sections)} section(s), {len(part.tests)} test(s)"
        )
        for section in part.sections:
            seconds = format_duration(split.weights[section.name] / 1000)
            print(f"    {seconds:>8}  {_section_label(section.name)} ({len(section.tests)})")


def dry_run(specs: list[ResolvedSpec], selection: Selection, args: argparse.Namespace) -> int:
    """Print what would run where; exit 0.  Nothing boots, nothing is recorded."""
    from imagefactory.spec.names import documented_rank
    from imagefactory.store.select import open_store
    from imagefactory.testrun.resolve import inventories_of, plan_distros
    from imagefactory.testrun.shard import split_plan

    whole = dataclasses.replace(selection, shard=None)
    durations = selection.shard.durations if selection.shard else durations_for(args)
    parts = selection.shard.spec.count if selection.shard else getattr(args, "clones", None) or 1
    mine = selection.shard.spec.index if selection.shard else None
    store = open_store(args.store)
    plan = plan_distros(specs, whole, store)
    inventories, warnings = inventories_of(plan.goldens)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    splits = split_plan(plan, whole, inventories, durations, parts)
    unit = "part" if selection.shard else "clone"
    print(f"selection {whole.canonical}; {parts} {unit}(s); nothing is booted (--dry-run)")
    print(
        f"durations: {durations.source or 'given'} ({durations.digest[:19]}, "
        f"{len(durations.tests)} test(s) known over {durations.runs} run(s)); "
        "an unknown test weighs the median of the known ones"
    )
    clones = getattr(args, "clones", None) or 1
    if getattr(args, "clones", 1) is None and not selection.shard:
        print("clones: sized by the VM budget when the run starts; --clones K shows that split")
    for distro in sorted(plan.goldens, key=documented_rank):
        if plan.goldens[distro] is None:
            print(f"{distro}: no ztest golden (make golden-ztest DISTRO={distro}): not run")
        if (split := splits.get(distro)) is None:
            continue
        _print_split(distro, split, mine, unit="clone" if mine is None and clones > 1 else "part")
        if mine is not None and clones > 1:  # this shard's part over its clones
            _print_clones(distro, split, mine, clones)
    return 0


def _print_clones(distro: str, split: DistroSplit, mine: int, clones: int) -> None:
    """`--shard i/N --clones K`: the shard's part split again over its K clones."""
    from imagefactory.testrun.balance import balance
    from imagefactory.testrun.shard import DistroSplit

    part = split.assignment.parts[mine - 1]
    again = balance(part.sections, split.weights, clones)
    sub = DistroSplit(part.sections, split.weights, again, (), None, split.estimated)
    _print_split(f"{distro} shard {mine}", sub, None, unit="clone")


def export_durations(args: argparse.Namespace, *, default_last: int) -> int:
    """`klab history --export-durations FILE`: the snapshot every shard of a matrix reads."""
    from imagefactory.testrun.durations import from_history, write_snapshot
    from imagefactory.testrun.history import History, default_db_path

    others = [
        flag
        for flag, given in (
            ("--test", args.test),
            ("--flaky", args.flaky),
            ("--diff", args.diff),
            ("--diff-last", args.diff_last),
            ("--json", args.json),
        )
        if given
    ]
    if others:
        raise UsageError(f"--export-durations does not combine with {', '.join(others)}")
    path: Path = args.db or default_db_path()
    if not path.exists():
        raise UsageError(
            f"--export-durations: there is no test history yet ({path})",
            hint="run the suite once (klab test ...) or import results (klab results merge)",
        )
    with History.open(path, readonly=True) as history:
        durations = from_history(
            history.conn, last=args.last or default_last, distro=args.distro, source=str(path)
        )
    try:
        write_snapshot(durations, args.export_durations)
    except OSError as exc:
        raise UsageError(f"--export-durations {args.export_durations}: {exc.strerror}") from None
    print(
        f"wrote {args.export_durations}: {len(durations.tests)} test(s), "
        f"{len(durations.distros)} distro(s), medians over {durations.runs} run(s); "
        f"digest {durations.digest}"
    )
    return 0
