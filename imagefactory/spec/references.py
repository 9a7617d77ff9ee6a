"""Checks that a spec's file references exist and are usable: hooks, cloud-init fragments,
signing keys.

Pydantic validates shapes; these checks need the repository, and a missing hook should be
reported when the spec is validated, with its line, not halfway through a 20-minute boot.
Hooks and fragments are read with the very functions the seed is built with (inlining,
payloads, fragment parsing), so whatever `seed` or `build` would refuse in them, `validate`
and `plan` refuse first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.paths import cloud_init_dir, hooks_dir, keys_dir
from imagefactory.spec.located import LocatedDoc, PathKey, dotted
from imagefactory.spec.model import LINEAGES, DistroSpec
from imagefactory.vm.hookplan import Hook
from imagefactory.vm.payload import attach_payload
from imagefactory.vm.userdata import load_fragment, resolve_fragments


def missing_references(spec: DistroSpec, doc: LocatedDoc) -> list[str]:
    """`file:line: field: message` for each referenced file that is missing or unusable."""
    problems: list[str] = []

    def check(
        path: PathKey, base: Path, relative: str, what: str, use: Callable[[Path], object]
    ) -> None:
        target = base / relative
        if not target.is_file():
            problems.append(f"{doc.origin_of(path)}: {dotted(path)}: {what} not found: {target}")
            return
        try:
            use(target)
        except UsageError as exc:
            problems.append(f"{doc.origin_of(path)}: {dotted(path)}: {exc}")

    for lineage in LINEAGES:
        for index, hook in enumerate(spec.hooks.for_lineage(lineage)):

            def pack(script: Path, timeout: float = float(hook.timeout)) -> Hook:
                return attach_payload(Hook.from_file(script, timeout=timeout))

            path: PathKey = ("hooks", lineage, index, "script")
            check(path, hooks_dir(), hook.script, "hook script", pack)
    for index, fragment in enumerate(spec.cloud_init.fragments):

        def parse(target: Path, name: str = fragment) -> object:
            resolve_fragments([name], cloud_init_dir())  # stays inside cloud-init/
            return load_fragment(target)

        path = ("cloud_init", "fragments", index)
        check(path, cloud_init_dir(), fragment, "user-data fragment", parse)
    image = spec.source.cloud_image
    if image is not None and image.signature is not None:
        check(
            ("source", "cloud_image", "signature", "keyring"),
            keys_dir(),
            image.signature.keyring,
            "keyring",
            lambda target: None,
        )
    return problems
