"""The two exports that are archives: OVA (a tar) and GCE (a tar.gz).

OVA: the OVF descriptor must be the first member (importers stream the file and need it
before the disk), then the disk, then the manifest.  Written in the pax format: its members
are plain USTAR headers unless a member needs more -- a disk over USTAR's 8 GiB size field
gets a pax size record, which VMware's and VirtualBox's readers accept, where a USTAR-only
writer would fail and a truncated size would corrupt the package.

GCE: Compute Engine imports a gzip-compressed tar holding exactly `disk.raw`, written as
its documentation shows (`tar --format=oldgnu -S -czf`): GNU tar records the raw disk's
holes as sparse entries, so a mostly empty disk does not go through gzip as gigabytes of
zeros.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from imagefactory.run import require_tool, run

GCE_MEMBER = "disk.raw"


def write_ova(target: Path, members: Sequence[Path]) -> None:
    """A tar of `members` in this order (descriptor, disk, manifest), with neutral owners."""
    now = int(time.time())
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.size = member.stat().st_size
            info.mode = 0o644
            info.mtime = now
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with member.open("rb") as data:
                tar.addfile(info, data)


def write_gce(target: Path, raw_disk: Path) -> None:
    """`tar.gz` of `raw_disk` as `disk.raw` (it must already be called that)."""
    if raw_disk.name != GCE_MEMBER:
        raise ValueError(f"the GCE disk must be named {GCE_MEMBER}, not {raw_disk.name}")
    tar = require_tool("tar", package="tar")
    run(
        [tar, "--format=oldgnu", "-S", "-czf", str(target), "-C", str(raw_disk.parent),
         "--owner=0", "--group=0", "--numeric-owner", GCE_MEMBER],
    )  # fmt: skip
