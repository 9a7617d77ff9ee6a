"""The build: fetch → volume → seed → boot + hooks → seal check → publish, under one lock.

Phase one fetches (or bootstraps) the base image; if the golden is already built from the
same image, the same resolved spec and the same guest code (hooks, their libraries and
payloads, the runner: `hooks_digest`), the build stops there ("up to date") unless forced.
Phase two writes into a private build volume and only `publish` touches the golden's name,
so a failed or interrupted build never damages the golden users already have.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console

from imagefactory import __version__
from imagefactory.builder.context import BuildContext, BuildOptions
from imagefactory.builder.fetch_step import FetchStep, bootstrap_request
from imagefactory.builder.identity import Identity, hooks_digest, what_changed
from imagefactory.builder.lock import golden_lock
from imagefactory.builder.markers import Markers, inputs_hash
from imagefactory.builder.seal_check import inspect_sealed_volume
from imagefactory.builder.statedir import build_dir
from imagefactory.builder.steps import RunReport, Step, StepRunner
from imagefactory.errors import ImageFactoryError, NotBuiltYet
from imagefactory.fetch.cache import ImageCache
from imagefactory.fetch.git_refs import pin_zfs_source
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import Golden, Provenance, Store
from imagefactory.store.crashpoints import crashpoint
from imagefactory.store.guest_facts import guest_summary
from imagefactory.vm.accel import select_accel
from imagefactory.vm.fromspec import hook_plan, seed_files, uefi_firmware, vm_config
from imagefactory.vm.provision import provision
from imagefactory.vm.seed import build_key_comment, generate_ssh_key

log = structlog.get_logger(__name__)


class VolumeStep:
    """Create the private build volume and write the image into it (resumable)."""

    name = "volume"

    def key(self, ctx: BuildContext) -> str:
        spec = ctx.resolved.spec
        return inputs_hash(
            leaf=ctx.leaf,
            image=str(ctx.image_digest),
            size=spec.disk.for_lineage(ctx.resolved.lineage),
            volblocksize=int(spec.disk.volblocksize),
            store=ctx.store.spec,
        )

    def restore(self, ctx: BuildContext, key: str) -> bool:
        """Resume onto the volume an interrupted build wrote from the same inputs."""
        previous = Markers(ctx.leaf).get(self.name, key)
        if previous is None:
            return False
        resumed = ctx.store.open_build_volume(ctx.leaf, str(previous["build_id"]))
        if resumed is None:
            return False
        ctx.volume = resumed
        ctx.build_id = resumed.build_id
        log.info("volume.resumed", volume=resumed.name, build_id=resumed.build_id)
        return True

    def run(self, ctx: BuildContext) -> None:
        spec = ctx.resolved.spec
        markers = Markers(ctx.leaf)
        key = self.key(ctx)
        assert ctx.image_path is not None
        size = spec.disk.for_lineage(ctx.resolved.lineage)
        volume = ctx.store.create_build_volume(
            ctx.leaf, ctx.build_id, size, volblocksize=int(spec.disk.volblocksize)
        )
        ctx.volume = volume
        volume = ctx.store.write_image(volume, ctx.image_path)
        crashpoint("build.volume")
        if volume.size < size:
            volume = ctx.store.grow(volume, size)
        ctx.volume = volume
        markers.put(self.name, key, {"build_id": ctx.build_id, "volume": volume.name})

    def keep(self, ctx: BuildContext) -> None:
        """A build kept for debugging (`--on-error abort`) keeps its volume as it is."""

    def cleanup(self, ctx: BuildContext) -> None:
        if ctx.volume is not None and ctx.golden is None:
            Markers(ctx.leaf).clear(self.name)
            ctx.store.destroy_build_volume(ctx.volume)
            ctx.volume = None


class SeedStep:
    """The NoCloud seed: hooks, per-build SSH key (public half only), fresh instance-id.

    The private key is only for this build's boot: it goes when the run ends, whether the
    build succeeded, failed, or keeps its work for debugging (`keep`)."""

    name = "seed"

    def run(self, ctx: BuildContext) -> None:
        spec = ctx.resolved.spec
        plan = ctx.plan
        assert plan is not None
        if ctx.resolved.lineage == "ztest" and not plan.hooks:
            raise NotBuiltYet(
                f"{spec.name} has no ztest hooks yet: the ztest payload is not built",
                hint="`make golden DISTRO=...` builds the lean lineage",
            )
        key = generate_ssh_key(ctx.build_dir / "ssh", build_key_comment(spec.name))
        files = seed_files(spec, plan, key)
        files.write_dir(ctx.build_dir / "seed")
        iso = ctx.build_dir / "seed.iso"
        files.write_iso(iso)
        ctx.seed_iso = iso

    def cleanup(self, ctx: BuildContext) -> None:
        for name in ("id_ed25519", "id_ed25519.pub"):
            (ctx.build_dir / "ssh" / name).unlink(missing_ok=True)

    def keep(self, ctx: BuildContext) -> None:
        """A kept build keeps its seed files (build_dir/seed), never the private key."""
        self.cleanup(ctx)


class BootStep:
    """Boot under QEMU, run the hooks in order, follow them over the status channel."""

    name = "boot"

    def run(self, ctx: BuildContext) -> None:
        assert ctx.volume is not None and ctx.seed_iso is not None
        spec = ctx.resolved.spec
        # From here on the volume is no longer "freshly written": never resume onto it.
        Markers(ctx.leaf).clear(VolumeStep.name)
        accel = select_accel(ctx.options.accel or "auto", cpu_model=spec.vm.cpu_model)
        uefi = uefi_firmware(spec)
        config = vm_config(
            spec,
            disk=ctx.volume.path,
            disk_format=ctx.volume.format,
            seed=ctx.seed_iso,
            accel=accel.accel,
            name=f"{ctx.leaf}-{ctx.build_id}",
        )
        assert ctx.plan is not None
        result = provision(config, ctx.plan, log_dir=ctx.build_dir, uefi=uefi)
        ctx.guest_seconds = result.total_seconds
        ctx.hook_timings = [
            {"hook": h.name, "state": h.state, "rc": h.rc, "seconds": h.seconds}
            for h in result.hooks
        ]
        (ctx.build_dir / "hooks.json").write_text(json.dumps(ctx.hook_timings, indent=2))
        (ctx.build_dir / "hooks.txt").write_text(result.report() + "\n")
        log.info("boot.report", report=result.report())
        result.raise_for_failure()

    def cleanup(self, ctx: BuildContext) -> None:
        """The Machine context already stopped QEMU; the seed step removes the key."""


class SealCheckStep:
    """Read the powered-off volume on the host: the seal must hold, the facts are recorded."""

    name = "seal-check"

    def run(self, ctx: BuildContext) -> None:
        assert ctx.volume is not None
        ctx.guest_facts = inspect_sealed_volume(
            ctx.volume.path,
            ctx.volume.format,
            default_user=ctx.resolved.spec.cloud_init.default_user.name,
            seal=ctx.resolved.spec.seal,
        )

    def cleanup(self, ctx: BuildContext) -> None:
        """Read-only: nothing to undo."""


class PublishStep:
    """Make the volume the golden: snapshot, read-only, provenance, atomic swap."""

    name = "publish"

    def run(self, ctx: BuildContext) -> None:
        assert ctx.volume is not None
        facts = ctx.guest_facts
        provenance = Provenance(
            distro=ctx.resolved.spec.name,
            lineage=ctx.resolved.lineage,
            build_id=ctx.build_id,
            zfs_version=_fact(facts, "zfs_version"),
            suite_version=_fact(facts, "suite_version"),
            source_digest=str(ctx.image_digest),
            spec_digest=ctx.resolved.spec_digest,
            hooks_digest=ctx.hooks_digest,
            inventory_digest=_fact(facts, "inventory_digest"),
            identity=ctx.identity.record() if ctx.identity else None,
            guest_facts=guest_summary(facts),
            tool_version=__version__,
        )
        ctx.golden = ctx.store.publish(ctx.volume, provenance)

    def cleanup(self, ctx: BuildContext) -> None:
        """Publishing is the commit point: the store recovers an interrupted one itself."""


BUILD_STEPS = (FetchStep, VolumeStep, SeedStep, BootStep, SealCheckStep, PublishStep)
"""The build's stages in order: the build runs them, `imagefactory plan` lists them."""


def _fact(facts: dict[str, Any], key: str) -> str | None:
    value = facts.get(key)
    return str(value) if value not in (None, "") else None


@dataclass
class BuildOutcome:
    golden: Golden | None
    up_to_date: bool
    build_dir: Path | None
    report: RunReport
    wall_seconds: float = 0.0
    guest_seconds: float = 0.0


def _is_up_to_date(ctx: BuildContext) -> Golden | None:
    """The golden, if it was built from exactly the inputs this build has (its identity);
    a golden from before identities has unknown inputs, so it is rebuilt."""
    golden = ctx.store.get_golden(ctx.leaf)
    if golden is None:
        return None
    assert ctx.identity is not None
    prov = golden.provenance
    reasons = what_changed(Identity.of_golden(prov), ctx.identity, build_id=prov.build_id)
    if reasons:
        log.info("build.rebuild_due", golden=golden.name, reasons=reasons)
        return None
    return golden


def _write_manifest(ctx: BuildContext, report: RunReport, started: datetime, wall: float) -> None:
    golden = ctx.golden
    manifest = {
        "golden": golden.name if golden else None,
        "leaf": ctx.leaf,
        "store": ctx.store.spec,
        "build_id": ctx.build_id,
        "distro": ctx.resolved.spec.name,
        "lineage": ctx.resolved.lineage,
        "source": {
            "kind": ctx.source_kind,
            "digest": str(ctx.image_digest) if ctx.image_digest else None,
            "path": str(ctx.image_path) if ctx.image_path else None,
            "size": ctx.image_path.stat().st_size if ctx.image_path else None,
        },
        "spec_digest": ctx.resolved.spec_digest,
        "hooks_digest": ctx.hooks_digest,
        "identity": ctx.identity.record() if ctx.identity else None,
        "zfs_source": {"ref": ctx.resolved.zfs_ref, "commit": ctx.resolved.zfs_commit}
        if ctx.resolved.zfs_commit
        else None,
        "virtual_size": golden.virtual_size if golden else None,
        "allocated": golden.allocated if golden else None,
        "guest_facts": ctx.guest_facts,
        "hooks": ctx.hook_timings,
        "steps": [
            {"name": t.name, "seconds": round(t.seconds, 3), "status": t.status}
            for t in report.timings
        ],
        "guest_seconds": round(ctx.guest_seconds, 3),
        "wall_seconds": round(wall, 3),
        "started_at": started.isoformat(),
        "tool_version": __version__,
    }
    (ctx.build_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


@contextmanager
def progress_display(leaf: str, enabled: bool | None) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current stage on a terminal; nothing otherwise (logs suffice)."""
    console = Console(stderr=True)
    if enabled is False or (enabled is None and not console.is_terminal):
        yield lambda _name: None
        return
    status = console.status(f"{leaf}: starting")

    def on_step(name: str) -> None:
        # The download shows its own progress bar, and rich allows one live display.
        if name == FetchStep.name:
            status.stop()
        else:
            status.update(f"{leaf}: {name}")
            status.start()

    try:
        yield on_step
    finally:
        status.stop()


def build_golden(
    resolved: ResolvedSpec, store: Store, cache: ImageCache, options: BuildOptions
) -> BuildOutcome:
    """Build one golden; raise on failure (after cleanup or, with abort, keeping the work)."""
    started_at = datetime.now(UTC)
    started = time.monotonic()
    source = options.source or resolved.spec.source.default
    # A PR build is pinned to the commit its branch is at now: the guest builds that one.
    resolved = pin_zfs_source(resolved)
    ctx = BuildContext(resolved, store, cache, options, source_kind=source)
    ctx.plan = hook_plan(resolved)
    ctx.hooks_digest = hooks_digest(ctx.plan)
    structlog.contextvars.bind_contextvars(golden=ctx.leaf)
    try:
        with (
            golden_lock(ctx.leaf, wait=options.wait_for_lock),
            progress_display(ctx.leaf, options.progress) as on_step,
        ):
            every: list[Step[BuildContext]] = [step() for step in BUILD_STEPS]
            fetch_steps, steps = every[:1], every[1:]
            fetch_report = StepRunner(fetch_steps, options.on_error, on_step=on_step).run(ctx)
            existing = None if resolved.force_rebuild else _is_up_to_date(ctx)
            if existing is not None:
                log.info(
                    "build.up_to_date", golden=existing.name, build_id=existing.provenance.build_id
                )
                return BuildOutcome(existing, True, None, fetch_report, time.monotonic() - started)
            ctx.build_dir = build_dir(ctx.leaf, ctx.build_id, create=True)
            (ctx.build_dir / "spec.json").write_text(
                json.dumps(resolved.spec.model_dump(mode="json"), indent=2) + "\n"
            )
            runner: StepRunner[BuildContext] = StepRunner(
                steps,
                options.on_error,
                report=fetch_report,
                on_step=on_step,
            )
            try:
                report = runner.run(ctx)
            except BaseException:
                wall = time.monotonic() - started
                _write_manifest(ctx, runner.report, started_at, wall)
                if options.on_error == "abort" and ctx.volume is not None:
                    log.warning(
                        "build.kept_for_debugging",
                        volume=str(ctx.volume.path),
                        build_dir=str(ctx.build_dir),
                        console=str(ctx.console_log),
                    )
                raise
            wall = time.monotonic() - started
            _write_manifest(ctx, report, started_at, wall)
            log.info(
                "build.published",
                golden=ctx.golden.name if ctx.golden else None,
                seconds=round(wall, 1),
                guest_seconds=round(ctx.guest_seconds, 1),
                build_dir=str(ctx.build_dir),
            )
            return BuildOutcome(ctx.golden, False, ctx.build_dir, report, wall, ctx.guest_seconds)
    finally:
        structlog.contextvars.unbind_contextvars("golden")


__all__ = ["BuildOutcome", "ImageFactoryError", "bootstrap_request", "build_golden"]
