"""`imagefactory validate [SPEC|DISTRO...]`: check specs without touching anything else.

Everything `plan`, `seed` and `build` would refuse in a spec is refused here (it is all
in the loader and the spec model), so a spec that validates only fails later for reasons
outside it: the network, the store, the guest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imagefactory.errors import ImageFactoryError, SpecError
from imagefactory.paths import distros_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate distro specs (all of distros/ when none is named)",
        description="Validate spec files or distro names; errors are printed as "
        "file:line: field: message and the exit status is 2.  A layer such as "
        "distros/_defaults.yaml is checked as a layer: known keys and right types, "
        "no field required.",
    )
    parser.add_argument("specs", nargs="*", metavar="SPEC|DISTRO")
    parser.add_argument(
        "--baseline",
        action="append",
        type=Path,
        default=[],
        metavar="FILE|DIR",
        help="baseline files to check too (baselines/ is always checked)",
    )
    parser.set_defaults(handler=run)


def _default_targets() -> list[Path]:
    from imagefactory.spec.loader import DEFAULTS_FILE, spec_files

    defaults = distros_dir() / DEFAULTS_FILE
    return [*([defaults] if defaults.is_file() else []), *spec_files()]


def check_spec(path: Path, store: str) -> str:
    """Validate one spec or layer file; return what `ok` reports about it."""
    from imagefactory.spec.loader import is_layer, load_spec_file, validate_layer_file
    from imagefactory.spec.model import LINEAGES
    from imagefactory.spec.names import golden_leaf, planned_golden_name

    if is_layer(path):
        validate_layer_file(path)
        return "defaults layer, merged under every spec"
    spec, _ = load_spec_file(path, env={})
    for lineage in LINEAGES:
        planned_golden_name(golden_leaf(spec, lineage), store)
    return f"{spec.name}: {spec.description or spec.family}"


def run(args: argparse.Namespace) -> int:
    from imagefactory.spec.loader import find_spec_path
    from imagefactory.store.select import resolve_store_spec
    from imagefactory.testrun.baseline import report_baselines

    targets: list[Path] = (
        [find_spec_path(name) for name in args.specs] if args.specs else _default_targets()
    )
    store = resolve_store_spec(None)  # once: the default may ask `zfs list`
    failed = 0
    for path in targets:
        try:
            summary = check_spec(path, store)
        except ImageFactoryError as exc:
            failed += 1
            # A SpecError's lines already start with file:line; others get the file.
            print(exc if isinstance(exc, SpecError) else f"{path}: {exc}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            continue
        print(f"ok  {path}  ({summary})")
    if failed:
        print(f"{failed} of {len(targets)} spec(s) invalid", file=sys.stderr)
    bad_baselines = report_baselines(args.baseline, out=sys.stdout, err=sys.stderr)
    if bad_baselines:
        print(f"{bad_baselines} baseline file(s) invalid", file=sys.stderr)
    return 2 if failed or bad_baselines else 0
