"""The release-candidate gate: rebuild the ztest goldens, run the quick suite on each.

`klab rc` (and `make rc`) answers one question: would these goldens, built from scratch
now, pass the quick suite on every distro?  So every chosen golden is force-rebuilt first
(one after another: a TCG build wants every core), and a distro whose rebuild fails is
"not built" -- an infrastructure error in the matrix and in the exit status, never a crash
and never a silent fallback to an older golden.  The rest is the ordinary test stage; its
run directory also gets `builds.json`, what each rebuild did.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import structlog

from imagefactory.builder.context import BuildOptions, SourceKind
from imagefactory.builder.pipeline import build_golden
from imagefactory.errors import ImageFactoryError
from imagefactory.fetch.cache import ImageCache, default_cache_root
from imagefactory.spec.loader import ResolvedSpec, load_distro
from imagefactory.store.base import Store
from imagefactory.store.select import open_store
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.stage import StageOptions, StageResult, run_stage
from imagefactory.vm.accel import AccelRequest

log = structlog.get_logger(__name__)

RC_SELECTION = Selection("suite", ("quick",))
BUILDS_FILE = "builds.json"


@dataclass(frozen=True)
class RcOptions:
    source: SourceKind | None = None
    """`bootstrap` applies to the distros that have a bootstrap source; the others use
    their spec's default."""
    rebuild: bool = True
    cache_dir: Path | None = None
    site_mirror: str | None = None
    package_mirror: str | None = None


@dataclass(frozen=True)
class BuildRecord:
    distro: str
    ok: bool
    seconds: float
    golden: str | None = None
    build_id: str | None = None
    error: str | None = None


def source_for(resolved: ResolvedSpec, requested: SourceKind | None) -> SourceKind | None:
    if requested == "bootstrap" and resolved.spec.source.bootstrap is None:
        return None
    return requested


def rebuild_goldens(
    specs: Sequence[ResolvedSpec],
    store: Store,
    options: RcOptions,
    *,
    accel: AccelRequest = "auto",
    report: Callable[[str], None] | None = None,
) -> list[BuildRecord]:
    cache = ImageCache(options.cache_dir or default_cache_root())
    records = []
    for resolved in specs:
        forced = load_distro(str(resolved.path), lineage="ztest", force=True)
        build = BuildOptions(
            source=source_for(forced, options.source),
            accel=accel,
            site_mirror=options.site_mirror,
            package_mirror=options.package_mirror,
        )
        name = forced.spec.name
        started = time.monotonic()
        if report is not None:
            report(f"{name}: rebuilding {forced.golden_leaf}")
        try:
            outcome = build_golden(forced, store, cache, build)
        except ImageFactoryError as exc:
            error = str(exc).splitlines()[0]
            log.error("rc.build_failed", distro=name, error=error)
            records.append(BuildRecord(name, False, time.monotonic() - started, error=error))
            if report is not None:
                report(f"{name}: rebuild failed: {error}")
            continue
        golden = outcome.golden
        records.append(
            BuildRecord(
                name,
                True,
                time.monotonic() - started,
                golden=golden.name if golden else None,
                build_id=golden.provenance.build_id if golden else None,
            )
        )
        if report is not None:
            report(f"{name}: rebuilt {golden.name if golden else '?'}")
    return records


def not_built_outcomes(records: Sequence[BuildRecord]) -> dict[str, DistroOutcome]:
    return {
        r.distro: DistroOutcome.failed_infrastructure(
            r.distro, f"the rebuild failed: {r.error}", not_built=True, duration_s=r.seconds
        )
        for r in records
        if not r.ok
    }


def run_rc(
    specs: Sequence[ResolvedSpec],
    rc: RcOptions,
    stage: StageOptions,
    *,
    selection: Selection = RC_SELECTION,
    store: Store | None = None,
    report: Callable[[str], None] | None = None,
) -> StageResult:
    """Rebuild, then gate on `selection` (the quick suite unless the caller chose)."""
    store = store if store is not None else open_store(stage.store)
    records: list[BuildRecord] = []
    if rc.rebuild:
        records = rebuild_goldens(specs, store, rc, accel=stage.accel, report=report)
    result = run_stage(
        specs,
        selection,
        stage,
        store=store,
        report=report,
        preset=not_built_outcomes(records),
    )
    path = result.run_dir / BUILDS_FILE
    path.write_text(json.dumps([asdict(r) for r in records], indent=2) + "\n", encoding="utf-8")
    result.files["builds"] = path
    return result
