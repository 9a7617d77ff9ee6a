"""Payload files for the guest, appended to the hook that installs them.

The seed carries hook scripts only (`write_files` of the runner's state directory), but a
ztest golden also needs bpftrace scripts, recipes and runfiles.  A hook asks for a directory
of files with a directive line ``# imagefactory-payload: <dir under hooks/>``; the packer
appends that directory to the script as a base64 tar.gz after a marker line.  The hook ends
with ``exit``, so bash never reads the data; the hook finds the marker in ``$0`` and unpacks
what follows.  No heredoc, no second channel, and the payload is covered by the same seed
checks as every hook.

The archive is deterministic (sorted names, zero times and owners, modes normalised to
0644/0755), so the same files always give the same seed bytes and the same cache keys.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import io
import re
import tarfile
from pathlib import Path

from imagefactory.errors import SpecError
from imagefactory.paths import hooks_dir
from imagefactory.vm.hookplan import Hook, HookPlan

DIRECTIVE = re.compile(rb"^# imagefactory-payload: (\S+)[ \t]*$", re.MULTILINE)
MARKER = b"__IMAGEFACTORY_PAYLOAD_BELOW__"
_LINE = 76


def payload_dir(hook: Hook) -> str | None:
    """The directory (relative to hooks/) a hook asks for, or None."""
    match = DIRECTIVE.search(hook.content)
    return match.group(1).decode() if match else None


def _files(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    if not files:
        raise SpecError(f"payload directory {directory} has no files")
    return files


def pack_directory(directory: Path) -> bytes:
    """A reproducible tar.gz of the directory's files, paths relative to it."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in _files(directory):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def _base64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\n".join(encoded[i : i + _LINE] for i in range(0, len(encoded), _LINE)) + b"\n"


def attach_payload(hook: Hook, hooks_root: Path | None = None) -> Hook:
    """The hook with its payload appended; hooks without the directive come back unchanged."""
    relative = payload_dir(hook)
    if relative is None:
        return hook
    if re.search(rb"^" + MARKER + rb"$", hook.content, re.MULTILINE):
        raise SpecError(f"hook {hook.name} already carries a payload")
    base = (hooks_root if hooks_root is not None else hooks_dir()).resolve()
    directory = (base / relative).resolve()
    if not directory.is_relative_to(base) or not directory.is_dir():
        raise SpecError(
            f"hook {hook.name}: payload directory {relative!r} is not a directory under {base}"
        )
    return dataclasses.replace(
        hook, content=append_archive(hook.content, pack_directory(directory))
    )


def append_archive(script: bytes, archive: bytes) -> bytes:
    """`script`, the marker line, then `archive` in base64 lines: what the hook unpacks."""
    body = script if script.endswith(b"\n") else script + b"\n"
    return body + MARKER + b"\n" + _base64_lines(archive)


def with_payloads(plan: HookPlan, hooks_root: Path | None = None) -> HookPlan:
    """Every hook of a plan with the payload it asks for appended."""
    return HookPlan.of(attach_payload(hook, hooks_root) for hook in plan.hooks)


def unpack(content: bytes) -> dict[str, bytes]:
    """The files a packed hook carries (for tests and `imagefactory seed` inspection)."""
    _, sep, data = content.partition(b"\n" + MARKER + b"\n")
    if not sep:
        return {}
    archive = gzip.decompress(base64.b64decode(data))
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            if extracted is not None:
                files[member.name] = extracted.read()
    return files
