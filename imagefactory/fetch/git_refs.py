"""Which commit a PR build's `KLAB_ZFS_BRANCH` names, resolved on the host with `git ls-remote`.

The guest checks out exactly this commit, and the golden's identity includes it: a branch or
pull request that moves is a new input, so the next build is due, and the golden records
what it was built from.  A name is a branch, else a tag (peeled to its commit), else -- for
`pr-N` only -- GitHub's `refs/pull/N/head`: `pr-12345` builds pull request 12345 unless the
source has a branch called `pr-12345`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

from imagefactory.errors import InfrastructureError, UsageError
from imagefactory.run import run
from imagefactory.spec.loader import ResolvedSpec

#: GitHub's pull request heads (`refs/pull/N/head`), asked for by `pr-N`.
PR_NAME = re.compile(r"pr-([1-9][0-9]{0,9})")
_LINE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})\t(refs/\S+)")
LS_REMOTE_TIMEOUT = 120.0


@dataclass(frozen=True)
class ResolvedRef:
    """A name as asked for, the ref it resolved to, and that ref's commit."""

    name: str
    ref: str
    commit: str


def parse_ls_remote(text: str) -> dict[str, str]:
    """`git ls-remote` output as ref -> object id; lines of any other shape are ignored
    (a server's banner or a warning must never be read as a ref)."""
    refs: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line.strip("\r"))
        if match is not None:
            refs.setdefault(match.group(2), match.group(1))
    return refs


def candidate_refs(name: str) -> list[str]:
    """The refs `name` may mean, in the order they win."""
    refs = [f"refs/heads/{name}", f"refs/tags/{name}"]
    pr = PR_NAME.fullmatch(name)
    if pr is not None:
        refs.append(f"refs/pull/{pr.group(1)}/head")
    return refs


def pick(name: str, refs: dict[str, str]) -> ResolvedRef | None:
    """The first candidate the source has; an annotated tag gives its peeled commit."""
    for ref in candidate_refs(name):
        commit = refs.get(f"{ref}^{{}}") or refs.get(ref)
        if commit is not None:
            return ResolvedRef(name, ref, commit)
    return None


def resolve_ref(url: str, name: str) -> ResolvedRef:
    """Ask the source (`url`) which commit `name` is at now."""
    patterns = candidate_refs(name)
    patterns.insert(2, f"refs/tags/{name}^{{}}")
    # Never prompt for credentials: a build runs unattended, a wrong URL must just fail.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    proc = run(
        ["git", "ls-remote", "--", url, *patterns],
        check=False,
        env=env,
        timeout=LS_REMOTE_TIMEOUT,
        hint="PR builds resolve their branch on the host: install git",
    )
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise InfrastructureError(
            f"cannot list the refs of {url}: {tail[0]}",
            hint="check KLAB_ZFS_SOURCE and that this host reaches it",
        )
    found = pick(name, parse_ls_remote(proc.stdout))
    if found is None:
        what = "branch, tag or pull request" if PR_NAME.fullmatch(name) else "branch or tag"
        raise UsageError(
            f"KLAB_ZFS_BRANCH={name}: {url} has no {what} of that name",
            hint="pr-N builds pull request N (refs/pull/N/head); other names are branches or tags",
        )
    return found


def pin_zfs_source(resolved: ResolvedSpec) -> ResolvedSpec:
    """A PR build's spec with the commit its branch is at now (`zfs_ref`, `zfs_commit`);
    any other spec unchanged."""
    git = resolved.spec.zfs.git
    if resolved.spec.zfs.provider != "git" or git is None:
        return resolved
    found = resolve_ref(str(git.url), git.branch)
    return dataclasses.replace(resolved, zfs_ref=found.ref, zfs_commit=found.commit)
