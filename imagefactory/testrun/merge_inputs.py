"""Read the run directories `klab results merge` is given: run.json checked, pieces listed.

A run directory comes from another machine (a CI artifact), so its run.json is outside
text: read size-capped, checked field by field, and any fault is one line naming the file
and the field (exit 2).  Each directory becomes `pieces`: one per distro and shard, with the
directory holding that piece's artifacts (a shard run's `<distro>/`, a merged run's
`<distro>/shard-<i>-of-<N>/`) and what its run recorded about it (status, golden, context).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from imagefactory.errors import UsageError
from imagefactory.testrun.artifacts import RUN_FILE
from imagefactory.testrun.selection import Kind, Selection

MAX_RUN_JSON = 256 * 1024 * 1024
_KINDS: dict[str, Kind] = {"run": "run", "group": "group", "suite": "suite", "recipe": "recipe"}
_DISTRO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Context(_Loose):
    kernel: str | None = None
    accel: str | None = None


class _Distro(_Loose):
    distro: str
    status: str
    message: str | None = None
    golden_build_id: str | None = None
    zfs_version: str | None = None
    suite_version: str | None = None
    duration_s: float | None = None
    context: _Context = _Context()


class _Split(_Loose):
    sections: dict[str, int] = {}
    tests: dict[str, int] = {}
    expected_s: list[float] = []


class _Piece(_Loose):
    index: int
    run_id: str
    status: str
    message: str | None = None
    duration_s: float | None = None
    dir: str


class _Shard(_Loose):
    index: int | None = None
    count: int = 1
    selection: str
    durations_digest: str | None = None
    distros: dict[str, _Split] = {}
    pieces: dict[str, list[_Piece]] = {}
    """Merged runs only: per distro, the shards it holds (index, source run, its dir)."""


class _Baseline(_Loose):
    digest: str | None = None


class _Run(_Loose):
    run_id: str
    selection: str
    selected: list[str] = []
    baseline: _Baseline | None = None
    distros: list[_Distro]
    shard: _Shard | None = None
    merged_from: list[str] = []


@dataclass(frozen=True)
class Piece:
    """One distro's part of one shard: where its artifacts are and what its run said."""

    distro: str
    index: int
    run_id: str
    directory: Path
    status: str
    message: str | None
    duration_s: float | None
    golden_build_id: str | None
    zfs_version: str | None
    suite_version: str | None
    kernel: str | None
    accel: str | None
    recorded: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """A shard run's run.json entry for the distro, as read (its verdicts and `judged`
    record: testrun/judged_record.py); None for a piece of a merged run."""


@dataclass
class RunInput:
    """A run directory to merge, as its run.json describes it."""

    path: Path
    run_id: str
    selection: str
    """The whole selection's canonical text (without `shard=`)."""
    selected: tuple[str, ...]
    count: int
    durations_digest: str | None
    baseline_digest: str | None
    splits: dict[str, dict[str, int]]
    """Per distro: test -> the part it was assigned to."""
    expected_s: dict[str, list[float]]
    pieces: list[Piece] = field(default_factory=list)
    merged_from: tuple[str, ...] = ()

    def as_selection(self) -> Selection:
        kind, sep, _ = self.selection.partition("=")
        known = _KINDS.get(kind) if sep else None
        if known is not None:
            return Selection(known, self.selected)
        return Selection("run", self.selected, label=self.selection)


def _fault(where: str, error: ValidationError) -> UsageError:
    first = error.errors()[0]
    field_path = ".".join(str(p) for p in first["loc"]) or "(top)"
    return UsageError(
        f"{where}: {field_path}: {first['msg']}",
        hint="give run directories written by klab test, klab rc or klab results merge",
    )


def _check(where: str, what: str, value: str, pattern: re.Pattern[str]) -> None:
    if not pattern.fullmatch(value):
        raise UsageError(f"{where}: {what} {value[:80]!r} is not one")


def read_run(path: Path) -> RunInput:
    """The run directory at `path`; UsageError (one line) when it is not a usable one."""
    where = str(path / RUN_FILE)
    if not path.is_dir():
        raise UsageError(f"{path}: not a directory", hint="give run directories (RUNDIR...)")
    try:
        with (path / RUN_FILE).open("rb") as handle:
            data = handle.read(MAX_RUN_JSON + 1)
    except FileNotFoundError:
        raise UsageError(f"{where}: missing: not a finished run directory") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_RUN_JSON:
        raise UsageError(f"{where}: over {MAX_RUN_JSON} bytes")
    try:
        raw: Any = json.loads(data.decode("utf-8"))
        run = _Run.model_validate(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ValidationError):
            raise _fault(where, exc) from None
        raise UsageError(f"{where}: not JSON: {str(exc).splitlines()[0][:120]}") from None
    _check(where, "run_id", run.run_id, _RUN_ID)
    shard = run.shard
    count = shard.count if shard is not None else 1
    if not 1 <= count <= 256:
        raise UsageError(f"{where}: shard.count {count} is not between 1 and 256")
    if shard is not None and shard.index is not None and not 1 <= shard.index <= count:
        raise UsageError(f"{where}: shard.index {shard.index} is not between 1 and {count}")
    found = RunInput(
        path=path,
        run_id=run.run_id,
        selection=shard.selection if shard is not None else run.selection,
        selected=tuple(run.selected),
        count=count,
        durations_digest=shard.durations_digest if shard is not None else None,
        baseline_digest=run.baseline.digest if run.baseline is not None else None,
        splits={d: dict(s.tests) for d, s in (shard.distros if shard else {}).items()},
        expected_s={d: list(s.expected_s) for d, s in (shard.distros if shard else {}).items()},
        merged_from=tuple(run.merged_from),
    )
    for entry, recorded in zip(run.distros, raw["distros"], strict=True):
        _check(where, "distro", entry.distro, _DISTRO)
        found.pieces += _pieces_of(path, where, entry, run.run_id, shard, count, recorded)
    return found


def _pieces_of(
    path: Path,
    where: str,
    entry: _Distro,
    run_id: str,
    shard: _Shard | None,
    count: int,
    recorded: dict[str, Any],
) -> list[Piece]:
    def piece(index: int, source: str, directory: Path, status: str, message: str | None,
              duration: float | None) -> Piece:  # fmt: skip
        return Piece(
            entry.distro, index, source, directory, status, message, duration,
            entry.golden_build_id, entry.zfs_version, entry.suite_version,
            entry.context.kernel, entry.context.accel,
        )  # fmt: skip

    if shard is not None and shard.index is None:  # a merged run: one piece per shard it holds
        pieces = []
        for p in shard.pieces.get(entry.distro, []):
            _check(where, "pieces.run_id", p.run_id, _RUN_ID)
            if not 1 <= p.index <= count or Path(p.dir).name != p.dir:
                raise UsageError(f"{where}: pieces of {entry.distro}: bad index or dir {p.dir!r}")
            directory = path / entry.distro / p.dir
            pieces.append(piece(p.index, p.run_id, directory, p.status, p.message, p.duration_s))
        return pieces
    index = shard.index if shard is not None and shard.index is not None else 1
    whole = piece(index, run_id, path / entry.distro, entry.status, entry.message,
                  entry.duration_s)  # fmt: skip
    return [dataclasses.replace(whole, recorded=recorded)]
