"""Baselines: which non-PASS results are known, and where, so a regression stands out.

zts-report knows upstream's `known`/`maybe` lists keyed by platform alone; a lab that tests
several distros, suite versions, kernels and accelerators needs the same facts scoped to
where they hold, plus its own.  A baseline file (`baselines/*.yaml`) is a list of entries:

    - test: rsend/send-c_verify_ratio   # path under tests/functional, or an fnmatch glob
      result: KILLED                    # FAIL, SKIP, KILLED, or a list of them
      kind: flaky                       # known (always fails: a PASS is stale) | flaky
      reason: hits its 10-minute limit under TCG on a loaded host
      zfs: ">=2.3,<2.4"                 # optional scopes: a version specifier (PEP 440),
      distros: [debian13]               #   distro names,
      kernel: '^6\\.12\\.'               #   a regex searched in the kernel release,
      accel: tcg                        #   tcg | kvm
      expires: 2027-06-30               # optional: after it, the entry is due for review

An entry matches a test when its `test` names it (exactly or by glob) and every scope it has
holds for the run.  A scope the run does not know (no kernel given) does not hold: the entry
is not applied and a warning says so, because a guess could hide a regression.  When several
entries match, the most specific wins: an exact path over a glob, then more scopes over
fewer, then the longer glob, then the earlier entry.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from fnmatch import translate
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BeforeValidator, Field, ValidationError, field_validator

from imagefactory import settings
from imagefactory.errors import SpecError, UsageError
from imagefactory.paths import project_root
from imagefactory.spec.loader import all_distro_names, format_validation_error
from imagefactory.spec.types import StrictModel
from imagefactory.testrun.baseline_yaml import read_entries
from imagefactory.testrun.regex_guard import backtracks_exponentially
from imagefactory.testrun.results import name_from_path
from imagefactory.testrun.verdict import RunContext

ENV_BASELINE = settings.BASELINE.name
"""Files or directories (`:`-separated) used when no --baseline is given."""
BASELINE_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 16 * 1024 * 1024
"""A baseline is hand-written text; anything larger is a mistake (or an attack)."""

ResultWord = Literal["FAIL", "SKIP", "KILLED"]
Kind = Literal["known", "flaky"]
Scope = Literal["distros", "zfs", "kernel", "accel"]
SCOPES: tuple[Scope, ...] = ("distros", "zfs", "kernel", "accel")
_GLOB_CHARS = frozenset("*?[")
_VERSION = re.compile(r"(\d+\.\d+(?:\.\d+)?)(?:[-_.~]?rc(\d+))?")


def _one_or_many(value: Any) -> Any:
    """`result: FAIL` and `result: [FAIL, KILLED]` (likewise `distros`) mean the same."""
    return [value] if isinstance(value, str) else value


def _strict_string(value: Any) -> Any:
    """YAML turns `zfs: 2.10` into the float 2.1: refuse numbers rather than misread them."""
    if isinstance(value, bool | int | float):
        raise ValueError(f"quote it: {value!r} was read as a number, not as text")
    return value


class BaselineEntry(StrictModel):
    """One fact about a test's result, and where it holds."""

    test: str = Field(description="path under tests/functional (or a glob), e.g. rsend/*")
    result: Annotated[tuple[ResultWord, ...], BeforeValidator(_one_or_many)] = Field(
        description="the result(s) this entry expects"
    )
    kind: Kind
    reason: str = Field(description="an issue URL or why; shown in every report")
    distros: Annotated[tuple[str, ...] | None, BeforeValidator(_one_or_many)] = None
    zfs: Annotated[str | None, BeforeValidator(_strict_string)] = None
    kernel: Annotated[str | None, BeforeValidator(_strict_string)] = None
    accel: Literal["tcg", "kvm"] | None = None
    expires: date | None = None

    @field_validator("test")
    @classmethod
    def _test_path(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("a test path (cli_root/zpool_create/zpool_create_001_pos) or glob")
        return name_from_path(value)

    @field_validator("result", "distros")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # Here rather than `min_length`: pydantic would report it next to a bad item too.
        if value is not None and not value:
            raise ValueError("name at least one")
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say why: an issue URL or a sentence")
        return " ".join(value.split())

    @field_validator("zfs")
    @classmethod
    def _specifier(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                specifier_set(value)
            except InvalidSpecifier:
                raise ValueError(
                    f'invalid version specifier {value!r}: write e.g. ">=2.3,<2.4" or "==2.2.*"'
                ) from None
        return value

    @field_validator("kernel")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
                nested = backtracks_exponentially(value)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
            if nested:
                raise ValueError(
                    f"{value!r} repeats a repetition or an alternation, which can take "
                    "exponential time on the guest's kernel string: write it without, "
                    "e.g. '^6\\.12\\.'"
                )
        return value


@functools.lru_cache(maxsize=1024)
def specifier_set(text: str) -> SpecifierSet:
    """Parsed once per distinct text: a baseline repeats a handful over hundreds of entries."""
    return SpecifierSet(text)


def zfs_version(text: str | None) -> Version | None:
    """`2.3.2-2`, `zfs-2.4.0-rc1`, `2.2.2-0ubuntu9.1` → a comparable version; None if none."""
    match = _VERSION.search(text or "")
    if match is None:
        return None
    try:
        return Version(match.group(1) + (f"rc{match.group(2)}" if match.group(2) else ""))
    except InvalidVersion:
        return None


@dataclass(frozen=True, slots=True)
class Entry:
    """A loaded entry: its model, where it was written, and its compiled matchers."""

    spec: BaselineEntry
    origin: str
    order: int
    glob: re.Pattern[str] | None
    specifier: SpecifierSet | None
    kernel: re.Pattern[str] | None

    @classmethod
    def build(cls, spec: BaselineEntry, origin: str, order: int) -> Entry:
        is_glob = bool(_GLOB_CHARS & set(spec.test))
        return cls(
            spec=spec,
            origin=origin,
            order=order,
            glob=re.compile(translate(spec.test)) if is_glob else None,
            specifier=specifier_set(spec.zfs) if spec.zfs is not None else None,
            kernel=re.compile(spec.kernel) if spec.kernel is not None else None,
        )

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return tuple(s for s in SCOPES if getattr(self.spec, s) is not None)

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Sorts the most specific entry last (ties: the earlier entry wins)."""
        literal = len(self.spec.test.replace("*", ""))
        return (self.glob is None, len(self.scopes), literal, -self.order)

    def names(self, test: str) -> bool:
        return self.glob.fullmatch(test) is not None if self.glob else self.spec.test == test

    def covers(self, result: str) -> bool:
        return result in self.spec.result

    def expired(self, today: date) -> bool:
        return self.spec.expires is not None and self.spec.expires < today

    def unknown_scopes(self, context: RunContext) -> list[str]:
        """The scopes this entry names that the run has no value for (or none it can parse)."""
        missing = []
        if self.spec.distros is not None and context.distro is None:
            missing.append("distros")
        if self.specifier is not None and zfs_version(context.zfs_version) is None:
            missing.append("zfs")
        if self.kernel is not None and context.kernel is None:
            missing.append("kernel")
        if self.spec.accel is not None and context.accel is None:
            missing.append("accel")
        return missing

    def holds(self, context: RunContext) -> bool:
        """Every scope holds for the run (call after `unknown_scopes` came back empty)."""
        spec = self.spec
        if spec.distros is not None and context.distro not in spec.distros:
            return False
        if self.specifier is not None:
            version = zfs_version(context.zfs_version)
            if version is None or not self.specifier.contains(version, prereleases=True):
                return False
        if self.kernel is not None and not self.kernel.search(context.kernel or ""):
            return False
        return spec.accel is None or spec.accel == context.accel


@dataclass(frozen=True)
class Lookup:
    """The entries that apply to one test in one run, most specific last."""

    entries: list[Entry]
    unknown: list[tuple[Entry, list[str]]]
    """Entries naming the test whose scopes the run cannot decide: not applied, warned."""


@dataclass(frozen=True)
class Baseline:
    entries: tuple[Entry, ...] = ()
    files: tuple[str, ...] = ()
    digest: str | None = None
    """sha256 over the files' names and bytes, in load order: which facts judged a run."""
    _exact: dict[str, list[Entry]] = field(default_factory=dict, repr=False, compare=False)
    _globs: list[Entry] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        for entry in self.entries:
            if entry.glob is None:
                self._exact.setdefault(entry.spec.test, []).append(entry)
            else:
                self._globs.append(entry)

    def lookup(self, test: str, context: RunContext) -> Lookup:
        named = [*self._exact.get(test, ()), *(e for e in self._globs if e.names(test))]
        applied: list[Entry] = []
        unknown: list[tuple[Entry, list[str]]] = []
        for entry in named:
            missing = entry.unknown_scopes(context)
            if missing:
                unknown.append((entry, missing))
            elif entry.holds(context):
                applied.append(entry)
        applied.sort(key=lambda e: e.specificity)
        return Lookup(applied, unknown)


# ---------------------------------------------------------------- loading


def parse_baseline_text(text: str, display: str, *, first: int = 0) -> list[Entry]:
    """Entries of one file's text; SpecError with `file:line: field: message` lines."""
    entries: list[Entry] = []
    errors: list[str] = []
    for raw in read_entries(text, display):
        if raw.error is not None:
            errors.append(raw.error)
            continue
        try:
            spec = BaselineEntry.model_validate(raw.data)
        except ValidationError as exc:
            errors.append(format_validation_error(exc, raw.doc))
            continue
        entries.append(Entry.build(spec, f"{display}:{raw.line}", first + len(entries)))
    if errors:
        raise SpecError("\n".join(errors))
    return entries


def display_path(path: Path) -> str:
    """`baselines/x.yaml` for the repository's files, the path as given otherwise."""
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def baseline_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories expanded to their *.yaml / *.yml (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in BASELINE_SUFFIXES)
            if not found:
                raise UsageError(f"{path}: no baseline file (*.yaml) in this directory")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such baseline file or directory")
    return list(dict.fromkeys(files))


def _read(path: Path, display: str) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise SpecError(f"{display}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{display}: cannot read: {exc.strerror}") from None


def _duplicates(entries: Sequence[Entry]) -> list[str]:
    """Two entries for the same test, scopes and a shared result: which one applies is luck."""
    seen: dict[tuple[Any, ...], Entry] = {}
    errors = []
    for entry in entries:
        s = entry.spec
        for result in s.result:
            key = (s.test, result, s.distros, s.zfs, s.kernel, s.accel)
            if key in seen:
                errors.append(
                    f"{entry.origin}: test: {s.test} {result} duplicates {seen[key].origin}"
                )
                break
            seen[key] = entry
    return errors


def load_baseline(paths: Sequence[Path]) -> Baseline:
    """Load files and directories into one baseline; every error of every file at once."""
    errors: list[str] = []
    entries: list[Entry] = []
    files: list[str] = []
    digest = hashlib.sha256()
    for path in baseline_files(paths):
        display = display_path(path)
        data = _read(path, display)
        files.append(display)
        digest.update(display.encode() + b"\0" + data + b"\0")
        try:
            entries += parse_baseline_text(data.decode("utf-8"), display, first=len(entries))
        except UnicodeDecodeError as exc:
            errors.append(f"{display}: not UTF-8 text (byte {exc.start})")
        except SpecError as exc:
            errors.append(str(exc))
    errors += _duplicates(entries)
    if errors:
        raise SpecError("\n".join(errors), hint="see `Verdicts and baselines` in README.md")
    return Baseline(tuple(entries), tuple(files), digest.hexdigest() if files else None)


def baseline_record(baseline: Baseline | None) -> dict[str, Any] | None:
    """What run.json keeps of the baseline that judged a run (None: --no-baseline)."""
    if baseline is None:
        return None
    return {
        "digest": baseline.digest,
        "files": list(baseline.files),
        "entries": len(baseline.entries),
    }


def expired_entries(baseline: Baseline, today: date | None = None) -> list[Entry]:
    day = today or date.today()
    return [e for e in baseline.entries if e.expired(day)]


# ---------------------------------------------------------------- command line


def report_baselines(extra: Sequence[Path] = (), *, out: TextIO, err: TextIO) -> int:
    """For `imagefactory validate`: check baselines/ and `extra`, file by file, then as one
    set (duplicates across files); print `ok` lines and errors; return how many failed.

    Expired entries and distro names no spec defines are notes, not errors: a baseline may
    serve logs judged from other labs (`klab results judge --distro almalinux9`).
    """
    default = baselines_dir()
    try:
        files = baseline_files([*([default] if default.is_dir() else []), *extra])
    except UsageError as exc:
        print(exc, file=err)
        return 1
    failed = 0
    known = set(all_distro_names())
    for file in files:
        try:
            baseline = load_baseline([file])
        except (SpecError, UsageError) as exc:
            failed += 1
            print(exc, file=err)
            continue
        for entry in expired_entries(baseline):
            print(f"note: {entry.origin}: expired on {entry.spec.expires}: review it", file=err)
        for entry in baseline.entries:
            for name in sorted(set(entry.spec.distros or ()) - known):
                print(f"note: {entry.origin}: distros: {name!r} has no spec here", file=err)
        print(f"ok  {display_path(file)}  ({len(baseline.entries)} baseline entries)", file=out)
    if not failed and len(files) > 1:
        try:
            load_baseline(files)
        except SpecError as exc:
            failed += 1
            print(exc, file=err)
    return failed


def baselines_dir() -> Path:
    """The repository's baselines/, found like hooks/ (IMAGEFACTORY_HOME or the checkout)."""
    return project_root() / "baselines"


# --baseline/--no-baseline are declared with the other shared options (settings.py).
add_baseline_arguments = settings.add_baseline_options


def baseline_paths(args: argparse.Namespace) -> list[Path] | None:
    """--baseline, else $KLAB_BASELINE, else baselines/; None for --no-baseline."""
    given: list[Path] | None = getattr(args, "baseline", None)
    if getattr(args, "no_baseline", False):
        if given:
            raise UsageError("--baseline and --no-baseline exclude each other")
        return None
    if given:
        return given
    env = settings.BASELINE.value() or ""
    if env.strip():
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [baselines_dir()]


def baseline_from_args(args: argparse.Namespace) -> Baseline | None:
    """The baseline a command judges with, loaded and validated (usage error exit 2)."""
    paths = baseline_paths(args)
    return None if paths is None else load_baseline(paths)
