"""Regenerate data/zfs-tests-2.3.9-shape.json.gz from a git mirror of openzfs/zfs.

The shape of a real installed suite -- its runfiles and the paths of its executable test
scripts -- so the inventory writer and the host's name resolution are tested against the
real 1,500 tests (their real name clashes: `zfs_001_neg` in cli_root/zfs and cli_user/misc)
without a mirror, a network or a VM.  Source-tree modes stand in for installed ones.

    python -m tests.unit.testrun.make_suite_shape /path/to/openzfs/zfs.git [TAG]

(`fetch github:openzfs/zfs` gives a mirror with the tags.)
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from imagefactory.run import run

HERE = Path(__file__).resolve().parent
TAG = "zfs-2.3.9"


def shape_path(tag: str = TAG) -> Path:
    return HERE / "data" / f"zfs-tests-{tag.removeprefix('zfs-')}-shape.json.gz"


def _git(repo: Path, *args: str) -> str:
    return run(["git", "--git-dir", repo, *args]).stdout


def shape(repo: Path, tag: str) -> dict[str, object]:
    runfiles = {}
    for path in _git(repo, "ls-tree", "--name-only", tag, "tests/runfiles/").split():
        if path.endswith(".run"):
            runfiles[path.rsplit("/", 1)[-1]] = _git(repo, "show", f"{tag}:{path}")
    scripts = []
    for line in _git(repo, "ls-tree", "-r", tag, "tests/zfs-tests/tests").splitlines():
        meta, path = line.split("\t", 1)
        if meta.startswith("100755 "):
            scripts.append(path.removeprefix("tests/zfs-tests/"))
    commit = _git(repo, "rev-list", "-n", "1", tag).strip()
    return {"tag": tag, "commit": commit, "runfiles": runfiles, "scripts": sorted(scripts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("repo", type=Path)
    parser.add_argument("tag", nargs="?", default=TAG)
    args = parser.parse_args()
    data = json.dumps(shape(args.repo, args.tag), indent=0, sort_keys=True).encode()
    shape_path(args.tag).write_bytes(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    main()
