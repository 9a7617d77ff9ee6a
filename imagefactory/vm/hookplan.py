"""Which guest scripts a boot runs, in which order, each with its own timeout and environment.

A plan is plain data (no spec needed), so the seed, the host-side tracker and the tests all
work from the same list.  Hooks run in the order of their `NN-` prefix, whatever directory
they come from: a family hook `30-zfs.sh` lands between the common `20-...` and `40-...`
hooks, which is what the numbering is for.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imagefactory.errors import SpecError, UsageError
from imagefactory.vm.inline import inline_libraries

# The runner writes hook names into JSON and console lines unescaped: keep them plain.
HOOK_NAME = re.compile(r"\d\d-[A-Za-z0-9][A-Za-z0-9_.-]*\.sh")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Hook:
    """One script as it travels to the guest: its name there, its bytes, its limits."""

    name: str
    content: bytes
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)
    source: Path | None = None

    def __post_init__(self) -> None:
        if not HOOK_NAME.fullmatch(self.name):
            raise UsageError(
                f"hook name {self.name!r} is not NN-name.sh",
                hint="name hook scripts like 20-packages.sh (letters, digits, '.', '_', '-')",
            )
        if not self.timeout > 0:
            raise UsageError(f"hook {self.name}: timeout must be positive, got {self.timeout}")
        for key, value in self.env.items():
            if not ENV_NAME.fullmatch(key):
                raise UsageError(f"hook {self.name}: invalid environment variable name {key!r}")
            # The runner reads one KEY=VALUE per line; a newline would split a value.
            if "\n" in value or "\0" in value:
                raise UsageError(
                    f"hook {self.name}: environment value of {key} contains a newline or NUL"
                )

    @classmethod
    def from_file(cls, path: Path, *, timeout: float, env: Mapping[str, str] | None = None) -> Hook:
        """Read a script from disk, libraries it loads inlined (`inline`); its file name is
        its name in the guest."""
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise SpecError(f"cannot read hook script {path}: {exc.strerror}") from exc
        content = inline_libraries(content, path.parent)
        return cls(path.name, content, timeout, dict(env or {}), path)


@dataclass(frozen=True)
class HookPlan:
    """The ordered hooks of one boot; names are unique because the guest keys files by them."""

    hooks: tuple[Hook, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for hook in self.hooks:
            if hook.name in seen:
                raise UsageError(
                    f"two hooks are named {hook.name}",
                    hint="hooks from different directories still share one namespace in the guest",
                )
            seen.add(hook.name)
        ordered = tuple(sorted(self.hooks, key=lambda h: h.name))
        object.__setattr__(self, "hooks", ordered)

    @classmethod
    def of(cls, hooks: Iterable[Hook]) -> HookPlan:
        return cls(tuple(hooks))

    @property
    def names(self) -> list[str]:
        return [hook.name for hook in self.hooks]

    def get(self, name: str) -> Hook | None:
        return next((hook for hook in self.hooks if hook.name == name), None)

    def __len__(self) -> int:
        return len(self.hooks)

    def digest(self, *extra: bytes) -> str:
        """`sha256:<hex>` of everything the guest will run: each hook's name, bytes (libraries
        and payloads included), environment and timeout, plus `extra` (the runner itself).

        A golden is up to date only if this matches: editing `_lib.sh` or a payload must
        rebuild it, which the spec's digest alone cannot see."""
        h = hashlib.sha256()
        for hook in self.hooks:
            env = dict(sorted(hook.env.items()))
            head = {"name": hook.name, "env": env, "timeout": hook.timeout}
            h.update(json.dumps(head, sort_keys=True).encode() + b"\0")
            h.update(hashlib.sha256(hook.content).digest())
        for blob in extra:
            h.update(hashlib.sha256(blob).digest())
        return "sha256:" + h.hexdigest()
