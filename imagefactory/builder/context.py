"""Everything one build knows: its spec, store, cache, ids, directories and stage outputs."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from imagefactory.builder.identity import Identity
from imagefactory.fetch.cache import ImageCache
from imagefactory.spec.digest import Digest
from imagefactory.spec.loader import ResolvedSpec
from imagefactory.store.base import BuildVolume, Golden, Store
from imagefactory.vm.accel import AccelRequest
from imagefactory.vm.hookplan import HookPlan

SourceKind = Literal["cloud_image", "bootstrap"]


def new_build_id() -> str:
    """Sortable and unique: UTC time plus randomness (`20261122T031502-3f9a1c`)."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass
class BuildOptions:
    source: SourceKind | None = None
    on_error: Literal["cleanup", "abort"] = "cleanup"
    accel: AccelRequest | None = None
    site_mirror: str | None = None
    package_mirror: str | None = None
    wait_for_lock: bool = True
    progress: bool | None = None


class FetchContext(Protocol):
    """What the fetch stage reads and fills in: a build's context, or `plan`'s probe of the
    cache, which has no store to open (a files store would be created by opening it)."""

    resolved: ResolvedSpec
    cache: ImageCache
    options: BuildOptions
    source_kind: SourceKind
    plan: HookPlan | None
    image_path: Path | None
    image_digest: Digest | None
    identity: Identity | None


@dataclass
class BuildContext:
    resolved: ResolvedSpec
    store: Store
    cache: ImageCache
    options: BuildOptions
    build_id: str = field(default_factory=new_build_id)
    build_dir: Path = field(default_factory=Path)
    # Outputs, filled in by the steps in order.
    source_kind: SourceKind = "cloud_image"
    image_path: Path | None = None
    image_digest: Digest | None = None
    volume: BuildVolume | None = None
    seed_iso: Path | None = None
    hook_timings: list[dict[str, Any]] = field(default_factory=list)
    guest_facts: dict[str, Any] = field(default_factory=dict)
    golden: Golden | None = None
    guest_seconds: float = 0.0
    plan: HookPlan | None = None
    """The guest's hooks, read once: the seed, the boot and `hooks_digest` all use it."""
    hooks_digest: str | None = None
    identity: Identity | None = None
    """Everything the golden is made of (builder/identity.py): complete once fetch knows
    the source image; compared with the golden's by the up-to-date check, then recorded."""

    @property
    def leaf(self) -> str:
        return self.resolved.golden_leaf

    @property
    def console_log(self) -> Path:
        return self.build_dir / "console.log"
