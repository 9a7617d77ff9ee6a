"""Shared shell code for hooks, inlined when a hook is packed into a seed.

Hooks of one directory share helpers (messages, plan mode, package queries) in a library
next to them, loaded with the line ``. "${BASH_SOURCE[0]%/*}/<lib>" # imagefactory: inline``.
That line works as it stands where the hook runs from the repository (the plan tests,
shellcheck), but the guest's runner receives one file per hook and runs each on its own, so
the packer puts the library's text in place of the line.  The seed then holds
self-contained scripts, and a changed library changes every hook's bytes, hence the seed
and the golden's `hooks_digest` (HookPlan.digest), exactly like a change to the hook itself:
the next build is not "up to date".
"""

from __future__ import annotations

import re
from pathlib import Path

from imagefactory.errors import SpecError

DIRECTIVE = re.compile(
    rb'^\. "\$\{BASH_SOURCE\[0\]%/\*\}/([A-Za-z0-9_][A-Za-z0-9_.-]*)" # imagefactory: inline$',
    re.MULTILINE,
)


def inline_libraries(content: bytes, directory: Path) -> bytes:
    """`content` with each inline directive replaced by the named file of `directory`."""

    def expand(match: re.Match[bytes]) -> bytes:
        name = match.group(1).decode()
        path = directory / name
        try:
            library = path.read_bytes()
        except OSError as exc:
            raise SpecError(f"cannot inline {path}: {exc.strerror}") from exc
        if DIRECTIVE.search(library):
            raise SpecError(f"{path} inlines another library; one level only")
        body = library if library.endswith(b"\n") else library + b"\n"
        label = name.encode()
        return b"# --- %s, inlined ---\n%s# --- end of %s ---" % (label, body, label)

    return DIRECTIVE.sub(expand, content)
