"""Checks that a spec's file references exist: hooks, cloud-init fragments, signing keys.

Pydantic validates shapes; these checks need the repository, and a missing hook should be
reported when the spec is validated, with its line, not halfway through a 20-minute boot.
"""

from __future__ import annotations

from pathlib import Path

from imagefactory.paths import cloud_init_dir, hooks_dir, keys_dir
from imagefactory.spec.located import LocatedDoc, PathKey, dotted
from imagefactory.spec.model import LINEAGES, DistroSpec


def missing_references(spec: DistroSpec, doc: LocatedDoc) -> list[str]:
    """`file:line: field: message` for each referenced file that does not exist."""
    problems: list[str] = []

    def check(path: PathKey, base: Path, relative: str, what: str) -> None:
        target = base / relative
        if not target.is_file():
            problems.append(f"{doc.origin_of(path)}: {dotted(path)}: {what} not found: {target}")

    for lineage in LINEAGES:
        for index, hook in enumerate(spec.hooks.for_lineage(lineage)):
            check(("hooks", lineage, index, "script"), hooks_dir(), hook.script, "hook script")
    for index, fragment in enumerate(spec.cloud_init.fragments):
        check(("cloud_init", "fragments", index), cloud_init_dir(), fragment, "user-data fragment")
    image = spec.source.cloud_image
    if image is not None and image.signature is not None:
        check(
            ("source", "cloud_image", "signature", "keyring"),
            keys_dir(),
            image.signature.keyring,
            "keyring",
        )
    return problems
