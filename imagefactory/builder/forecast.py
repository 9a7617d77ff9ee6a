"""What a build would do now, without doing it: per stage cached or not, and why a rebuild
is due (`imagefactory plan`).

It asks the build's own steps -- their `key(ctx)` and `restore` -- and the golden's recorded
identity, so the forecast and the build cannot disagree about what is cached or stale.  Only
reads: the image cache, the store, the source's refs for a PR build, and (bootstrap source)
the mirror's Release file; what cannot be read is reported as unknown, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imagefactory.builder.context import BuildOptions, FetchContext, SourceKind
from imagefactory.builder.fetch_step import FetchStep
from imagefactory.builder.identity import Identity, golden_identity, short_digest, what_changed
from imagefactory.builder.pipeline import BUILD_STEPS
from imagefactory.errors import ImageFactoryError
from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.git_refs import pin_zfs_source
from imagefactory.spec.digest import Digest
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Golden, Store
from imagefactory.vm.fromspec import hook_plan
from imagefactory.vm.hookplan import HookPlan

Status = Literal["cached", "runs", "skipped", "unknown"]


@dataclass(frozen=True)
class StageForecast:
    name: str
    does: str
    status: Status
    detail: str = ""


@dataclass
class Forecast:
    golden: Golden | None
    identity: Identity | None
    reasons: list[str] = field(default_factory=list)
    """Why a rebuild is due; empty: the golden is up to date."""
    stages: list[StageForecast] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the forecast had to assume (a source it could not ask)."""

    @property
    def rebuild_due(self) -> bool:
        return bool(self.reasons)


@dataclass
class _Probe:
    """The fetch stage's view of a build (FetchContext), without a store or build ids."""

    resolved: ResolvedSpec
    cache: ImageCache
    options: BuildOptions
    source_kind: SourceKind
    plan: HookPlan | None
    image_path: Path | None = None
    image_digest: Digest | None = None
    identity: Identity | None = None


def stage_summary(step: type) -> str:
    """A step's one-line description: the first line of its docstring."""
    return (step.__doc__ or "").strip().splitlines()[0].rstrip(".") if step.__doc__ else ""


def forecast(
    resolved: ResolvedSpec,
    store: Store | None,
    cache: ImageCache,
    *,
    source_kind: SourceKind | None = None,
    package_mirror: str | None = None,
) -> Forecast:
    """What a build of `resolved` would do now; `store` None: there is none yet."""
    notes: list[str] = []
    try:
        resolved = pin_zfs_source(resolved)
    except ImageFactoryError as exc:
        notes.append(f"ZFS source not resolved: {exc}")
    options = BuildOptions(package_mirror=package_mirror)
    kind = source_kind or resolved.spec.source.default
    plan = hook_plan(resolved)
    ctx = _Probe(resolved, cache, options, kind, plan)
    fetch = _fetch_stage(ctx, notes)
    golden = store.get_golden(resolved.golden_leaf) if store is not None else None
    if ctx.identity is None:
        # The source image is unknown until fetched: compare everything else, assuming the
        # golden's image is still current (said so, in the notes).
        assumed = golden.provenance.source_digest if golden is not None else None
        if assumed:
            notes.append("assuming the source image is the golden's (a fetch may find a newer)")
            ctx.identity = golden_identity(
                resolved, plan, source_digest=assumed, bootstrapped=kind == "bootstrap"
            )
    reasons = _reasons(resolved, store, golden, ctx.identity)
    stages = [fetch]
    for step in BUILD_STEPS[1:]:
        status: Status = "runs" if reasons else "skipped"
        stages.append(StageForecast(step.name, stage_summary(step), status))
    return Forecast(golden, ctx.identity, reasons, stages, notes)


def _fetch_stage(ctx: FetchContext, notes: list[str]) -> StageForecast:
    step = FetchStep()
    does = stage_summary(FetchStep)
    try:
        key = step.key(ctx)
        if key is not None and step.restore(ctx, key):
            return StageForecast(step.name, does, "cached", short_digest(str(ctx.image_digest)))
    except ImageFactoryError as exc:
        notes.append(f"fetch: {exc}")
        return StageForecast(step.name, does, "unknown", str(exc))
    source = ctx.resolved.spec.source.cloud_image
    if ctx.source_kind == "cloud_image" and source is not None:
        last = ctx.cache.lookup(str(source.url))
        if last is not None and ctx.cache.get(last) is not None:
            assert ctx.plan is not None
            ctx.identity = golden_identity(
                ctx.resolved, ctx.plan, source_digest=str(last), bootstrapped=False
            )
            notes.append(
                f"assuming the vendor still serves {short_digest(str(last))} (the build checks)"
            )
            return StageForecast(
                step.name,
                does,
                "runs",
                f"checks the vendor's checksum; last fetched {short_digest(str(last))}",
            )
        return StageForecast(step.name, does, "runs", "not in the cache")
    return StageForecast(step.name, does, "runs", "not in the cache")


def _reasons(
    resolved: ResolvedSpec, store: Store | None, golden: Golden | None, now: Identity | None
) -> list[str]:
    reasons: list[str] = []
    if resolved.force_rebuild:
        reasons.append("forced (KLAB_FORCE_REBUILD)")
    if golden is None:
        where = f"in {store.spec}" if store is not None else "(the store does not exist yet)"
        return [*reasons, f"no golden {resolved.golden_leaf} {where}"]
    if now is None:
        return [*reasons, "the source image is unknown, so whether the golden is current is too"]
    prov = golden.provenance
    return reasons + what_changed(Identity.of_golden(prov), now, build_id=prov.build_id)
