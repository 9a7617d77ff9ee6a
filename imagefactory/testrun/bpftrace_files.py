"""The zfs-bt scripts' traces turned into JSON on the host, and the choice sent to the guest.

The guest runner (hooks/testrun/50-klab-test.sh) reads KLAB_BPF_SCRIPTS and writes each
script's output to `bpftrace/<name>.txt`.  After the artifacts come home, every requested
script gets `bpftrace/<name>.json` (schema in `imagefactory.testrun.bpftrace`), whether it
traced or not: a script that produced nothing is recorded with why, so a missing trace is
visible in the run directory, the report and the exporter instead of being a quiet gap.

Which scripts run (`--bpf`, and its default per accelerator): `bpftrace_option.py`.

Readers of a distro's traces (the report, the exporter, the fingerprints) call
`distro_traces`: with `--clones K`, after a crash, or in a merged run of shards, one distro
ran in several boots, each with its own `bpftrace/` (clones.py, merge.py), and the trace of
the distro is all of them combined (bpftrace_merge.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from imagefactory.atomic import write_atomic
from imagefactory.testrun.bpftrace import not_attached, parse_output
from imagefactory.testrun.bpftrace_merge import merge_traces
from imagefactory.vm.hookplan import HookPlan

log = structlog.get_logger(__name__)

ENV_SCRIPTS = "KLAB_BPF_SCRIPTS"
TRACE_DIR = "bpftrace"
MAX_TRACE_BYTES = 64 * 1024 * 1024
"""A trace bigger than this is read only this far (the guest's disk is bounded anyway)."""
MAX_TRACE_JSON_BYTES = 64 * 1024 * 1024
"""A parsed trace is far smaller than its text; a bigger JSON file is not one of ours."""
PIECE_DIR = re.compile(r"(?:clone-[0-9]{1,4}|boot-[0-9]{1,4}|shard-[0-9]{1,4}-of-[0-9]{1,4})")
"""Directories below a distro's that hold one boot's artifacts: clones.py's `clone-<k>/`
and `boot-<n>/`, merge.py's `shard-<i>-of-<N>/` (each may hold the others)."""
MAX_PIECE_DEPTH = 4
_DATE = re.compile(r"date: ([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})Z")


def with_bpf_scripts(plan: HookPlan, scripts: Sequence[str]) -> HookPlan:
    """The plan with KLAB_BPF_SCRIPTS set on every hook (only the test runner reads it).

    An empty value is "none" for the runner (`${KLAB_BPF_SCRIPTS-zio txg arc spl}`)."""
    value = " ".join(scripts)
    return HookPlan(tuple(replace(h, env={**h.env, ENV_SCRIPTS: value}) for h in plan.hooks))


def run_started(artifacts: Path) -> datetime | None:
    """When the guest runner began (system.txt's `date:`, the guest's UTC clock)."""
    try:
        text = (artifacts / "system.txt").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = _DATE.search(text[:4096])
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _runner_reason(artifacts: Path, name: str) -> str | None:
    """The runner's own word on why a script left no output, from runner.log."""
    try:
        lines = (artifacts / "runner.log").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        text = line.split(" ", 1)[-1]
        if "bpftrace is not installed" in text or f"{name}.bt is missing" in text:
            return f"the guest runner: {text.strip()[:200]}"
    return None


def trace_document(artifacts: Path, name: str) -> dict[str, Any]:
    """The JSON document of one script from its text (or from its absence)."""
    path = artifacts / TRACE_DIR / f"{name}.txt"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TRACE_BYTES)
    except FileNotFoundError:
        reason = _runner_reason(artifacts, name)
        return not_attached(name, reason or f"no output: the guest brought back no {path.name}")
    except OSError as exc:
        return not_attached(name, f"cannot read {path.name}: {exc.strerror}")
    return parse_output(
        data.decode("utf-8", errors="replace"), name, started=run_started(artifacts)
    )


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    # Compact: a four-hour run has thousands of reports.
    write_atomic(path, (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8"))


def write_trace_json(artifacts: Path, requested: Sequence[str] | None = None) -> list[Path]:
    """`bpftrace/<name>.json` for every requested script and every trace the guest brought.

    `requested` None: the scripts whose text is there.  A file that cannot be written is
    logged and left out; the run's verdicts never depend on traces.
    """
    names = list(requested or ())
    folder = artifacts / TRACE_DIR
    if folder.is_dir():
        names += sorted(p.stem for p in folder.glob("*.txt") if p.stem not in names)
    if not names:
        return []
    written = []
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        log.warning("bpftrace.unwritable", dir=str(folder), error=str(exc))
        return []
    for name in names:
        target = folder / f"{name}.json"
        try:
            _write_json(target, trace_document(artifacts, name))
        except OSError as exc:
            log.warning("bpftrace.unwritable", file=str(target), error=str(exc))
            continue
        written.append(target)
    return written


def load_trace(artifacts: Path, name: str) -> dict[str, Any] | None:
    """One boot's parsed trace as written above; None when absent or not this schema.

    A distro's trace (every clone and boot) is `distro_traces`, which readers use."""
    try:
        doc = json.loads((artifacts / TRACE_DIR / f"{name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("script") == name else None


def _piece_order(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"[0-9]+", path.name))


def piece_dirs(distro_dir: Path) -> list[Path]:
    """The distro's directory and every piece directory below it, in run order
    (`.`, `boot-2`, `clone-1`, `clone-1/boot-2`, `clone-2`, ...)."""
    found = [distro_dir]

    def walk(folder: Path, depth: int) -> None:
        if depth >= MAX_PIECE_DEPTH:
            return
        try:
            children = [p for p in folder.iterdir() if PIECE_DIR.fullmatch(p.name) and p.is_dir()]
        except OSError:
            return
        for child in sorted(children, key=lambda p: (p.name.split("-")[0], _piece_order(p))):
            if child.is_symlink():
                continue  # a piece is a real directory; a link could loop or leave the run
            found.append(child)
            walk(child, depth + 1)

    walk(distro_dir, 0)
    return found


def _read_piece(path: Path) -> object:
    """One piece's JSON as parsed, or a string saying why it cannot be read."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TRACE_JSON_BYTES + 1)
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror}"
    if len(raw) > MAX_TRACE_JSON_BYTES:
        return f"{path.name} is larger than {MAX_TRACE_JSON_BYTES >> 20} MiB"
    try:
        return json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError) as exc:
        return f"{path.name} is not JSON: {str(exc)[:120]}"


def distro_traces(distro_dir: Path, name: str) -> dict[str, Any] | None:
    """Script `name`'s trace of one distro's run: every piece's `bpftrace/<name>.json`
    (the distro directory's own, each `clone-<k>/`, `boot-<n>/`, `shard-<i>-of-<N>/`)
    combined by bpftrace_merge.merge_traces, which documents the result (the schema plus
    "sources", "complete", "errors").  None when no piece has the file; a piece whose file
    is damaged is a piece that did not trace and an entry in "errors", with why.
    """
    parts: list[tuple[str, object]] = []
    for piece in piece_dirs(distro_dir):
        path = piece / TRACE_DIR / f"{name}.json"
        if not path.is_file():
            continue
        label = piece.relative_to(distro_dir).as_posix()
        parts.append((label, _read_piece(path)))
    return merge_traces(name, parts) if parts else None
