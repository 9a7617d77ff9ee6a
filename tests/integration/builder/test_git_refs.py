"""PR builds: `KLAB_ZFS_BRANCH` resolved on the host against a real (local, bare) repository
that carries GitHub-style `refs/pull/N/head` refs, and the guest hook's checkout of exactly
the resolved commit, run for real with git (no OpenZFS compile)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from imagefactory.errors import EXIT_INFRASTRUCTURE, EXIT_USAGE, ImageFactoryError
from imagefactory.fetch.git_refs import pin_zfs_source, resolve_ref
from imagefactory.paths import hooks_dir
from imagefactory.spec.hookenv import hook_environment
from imagefactory.spec.loader import load_distro

HOOK = hooks_dir() / "ztest" / "20-zfs-source.sh"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


class Source:
    """A bare repository like a GitHub fork: master, a branch, an annotated tag, PR heads."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        self.bare = root / "zfs.git"
        git("init", "--quiet", "--initial-branch=master", str(self.work))
        self.commits = [self.commit(f"c{i}") for i in range(4)]
        git("branch", "fix-txg", self.commits[1], cwd=self.work)
        git("tag", "-a", "-m", "release", "zfs-9.9.9", self.commits[0], cwd=self.work)
        git("clone", "--quiet", "--bare", str(self.work), str(self.bare))
        self.set_ref("refs/pull/12345/head", self.commits[2])

    def commit(self, name: str) -> str:
        (self.work / name).write_text(name)
        git("add", name, cwd=self.work)
        git("commit", "--quiet", "-m", name, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def set_ref(self, ref: str, commit: str) -> None:
        git("update-ref", ref, commit, cwd=self.bare)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


def test_pr_name_resolves_to_the_pull_request_head(source: Source) -> None:
    found = resolve_ref(source.url, "pr-12345")
    assert (found.ref, found.commit) == ("refs/pull/12345/head", source.commits[2])


def test_a_branch_named_like_a_pr_wins_over_the_pull_request(source: Source) -> None:
    source.set_ref("refs/heads/pr-12345", source.commits[3])
    found = resolve_ref(source.url, "pr-12345")
    assert (found.ref, found.commit) == ("refs/heads/pr-12345", source.commits[3])


def test_other_names_are_branches_or_tags_peeled_to_their_commit(source: Source) -> None:
    assert resolve_ref(source.url, "fix-txg").commit == source.commits[1]
    tag = resolve_ref(source.url, "zfs-9.9.9")
    assert (tag.ref, tag.commit) == ("refs/tags/zfs-9.9.9", source.commits[0])


def test_a_missing_name_is_a_usage_error_naming_it(source: Source) -> None:
    with pytest.raises(ImageFactoryError) as caught:
        resolve_ref(source.url, "pr-999")
    assert caught.value.exit_status == EXIT_USAGE
    assert "pr-999" in str(caught.value) and "pull request" in str(caught.value)
    with pytest.raises(ImageFactoryError) as caught:
        resolve_ref(source.url, "12345")  # a bare number is a branch name, not a PR
    assert caught.value.exit_status == EXIT_USAGE


def test_an_unreachable_source_is_an_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(ImageFactoryError) as caught:
        resolve_ref(f"file://{tmp_path}/absent.git", "master")
    assert caught.value.exit_status == EXIT_INFRASTRUCTURE
    assert "absent.git" in str(caught.value)


def test_a_pr_build_is_pinned_and_its_hooks_get_the_commit(source: Source) -> None:
    # The spec model takes http(s) URLs only: load a PR spec as a user would, then point
    # its source at the local repository (model_copy skips validation) and pin it.
    env = {"KLAB_ZFS_SOURCE": "https://example.invalid/zfs", "KLAB_ZFS_BRANCH": "pr-12345"}
    resolved = load_distro("debian13", lineage="ztest", env=env)
    git_source = resolved.spec.zfs.git
    assert git_source is not None
    local = resolved.spec.model_copy(
        update={
            "zfs": resolved.spec.zfs.model_copy(
                update={"git": git_source.model_copy(update={"url": source.url})}
            )
        }
    )
    pinned = pin_zfs_source(dataclasses.replace(resolved, spec=local))
    assert (pinned.zfs_ref, pinned.zfs_commit) == ("refs/pull/12345/head", source.commits[2])
    hook_env = hook_environment(pinned)
    assert hook_env["KLAB_ZFS_GIT_COMMIT"] == source.commits[2]
    assert hook_env["KLAB_ZFS_GIT_REF"] == "refs/pull/12345/head"
    release = load_distro("debian13", lineage="ztest", env={})
    assert pin_zfs_source(release) is release  # no git source: nothing to resolve


def checkout(url: str, ref: str, commit: str, into: Path) -> subprocess.CompletedProcess[str]:
    """The guest hook's own function, sourced from the hook as it ships (plan mode off)."""
    script = f'. "{HOOK}"; checkout_commit "$1" "$2" "$3" "$4"'
    return subprocess.run(
        ["bash", "-c", script, "hook", url, ref, commit, str(into)],
        env={**os.environ, **GIT_ENV, "KLAB_PLAN": "0"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_guest_checks_out_the_resolved_commit_even_after_the_pr_moved(
    source: Source, tmp_path: Path
) -> None:
    resolved = resolve_ref(source.url, "pr-12345")
    source.set_ref("refs/pull/12345/head", source.commits[3])  # a push after resolving
    into = tmp_path / "build" / "zfs"
    proc = checkout(source.url, resolved.ref, resolved.commit, into)
    assert proc.returncode == 0, proc.stderr
    assert git("rev-parse", "HEAD", cwd=into) == source.commits[2]
    assert (into / "c2").is_file() and not (into / "c3").exists()


def test_the_guest_refuses_a_ref_that_no_longer_has_the_commit(
    source: Source, tmp_path: Path
) -> None:
    # A server that will not serve the commit by id (here: one it never had) gets the ref,
    # which points elsewhere now: the build stops rather than build another commit.
    missing = "0123456789abcdef0123456789abcdef01234567"
    proc = checkout(source.url, "refs/pull/12345/head", missing, tmp_path / "zfs")
    assert proc.returncode == 1
    assert f"is at {source.commits[2]} now, not at {missing}" in proc.stderr
