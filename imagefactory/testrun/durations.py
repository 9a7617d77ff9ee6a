"""Durations snapshots: each test's recorded running time, frozen in one file with a digest.

Balancing (`balance.py`) weighs each runfile section by how long its tests took.  Every
machine of a CI matrix must split the selection the same way, so they must weigh it with
the same numbers: `klab history --export-durations FILE` writes them once, and
`klab test|rc --durations FILE --shard i/N` reads them on each machine.  The digest (sha256
of the canonical JSON of the durations, the creation time left out) names the snapshot in
every shard's run.json, and `klab results merge` refuses shards balanced by different ones.

File (JSON):
    {"format": 1, "kind": "klab-durations", "created": "2026-12-02T21:00:00+00:00",
     "runs": 10, "tests": {"atime/atime_001_pos": 13.0, "atime/setup (Linux)": 1.0},
     "distros": {"debian13": {"atime/atime_001_pos": 12.0}},
     "digest": "sha256:<hex>"}
`tests` is the median of each test's durations over the last `runs` runs (every result with
a time: a KILLED test costs its timeout, a SKIP nearly nothing); `distros` the same per
distro.  Keys are test keys as in results (`dir/setup (Linux)` for a `:Linux` section's
setup).  The file is outside text: size-capped, schema-checked, the digest re-computed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.atomic import write_atomic
from imagefactory.errors import UsageError
from imagefactory.testrun.history.queries import window
from imagefactory.testrun.history.rows import result_key

FORMAT = 1
KIND = "klab-durations"
MAX_BYTES = 16 * 1024 * 1024
"""A snapshot of 2,000 tests on 20 distros is ~2 MiB; a bound against a runaway file."""
MAX_SECONDS = 7 * 24 * 3600.0
_KEY = re.compile(r"[A-Za-z0-9_.+/-]{1,300}(?: \([A-Za-z0-9_.+-]{1,64}\))?")
_DISTRO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Durations:
    """Seconds per test key, overall and per distro; `digest` names exactly these numbers."""

    tests: Mapping[str, float] = field(default_factory=dict)
    distros: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    runs: int = 0
    created: str | None = None
    source: str | None = None
    """Where it came from (a file, or `history:PATH`), for messages."""

    @property
    def digest(self) -> str:
        return digest_of(self.tests, self.distros)

    def for_distro(self, distro: str) -> dict[str, float]:
        """The distro's own medians, the overall ones where it has none."""
        return {**self.tests, **self.distros.get(distro, {})}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": KIND,
            "created": self.created,
            "runs": self.runs,
            "tests": dict(sorted(self.tests.items())),
            "distros": {d: dict(sorted(t.items())) for d, t in sorted(self.distros.items())},
            "digest": self.digest,
        }


def _canonical(tests: Mapping[str, float], distros: Mapping[str, Mapping[str, float]]) -> bytes:
    body = {
        "tests": {k: round(v, 3) for k, v in tests.items()},
        "distros": {d: {k: round(v, 3) for k, v in t.items()} for d, t in distros.items()},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def digest_of(tests: Mapping[str, float], distros: Mapping[str, Mapping[str, float]]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(tests, distros)).hexdigest()


# -- from the history ---------------------------------------------------------------------


def from_history(
    conn: sqlite3.Connection, *, last: int = 10, distro: str | None = None, source: str = ""
) -> Durations:
    """Medians over the newest `last` runs (that ran `distro`, when given)."""
    sql, params = window(last, distro=distro)
    rows = conn.execute(
        f"""SELECT d.distro, t.test, t.identifier, t.duration_s FROM test_results t
            JOIN distro_results d ON d.id = t.distro_result
            WHERE d.run IN ({sql}) AND t.duration_s IS NOT NULL AND t.result != 'ABSENT'
              {"AND d.distro = ?" if distro is not None else ""}""",
        [*params, *([distro] if distro is not None else [])],
    )
    overall: dict[str, list[float]] = {}
    per: dict[str, dict[str, list[float]]] = {}
    for name, test, identifier, seconds in rows:
        key = result_key(test, identifier)
        if not _KEY.fullmatch(key) or not _DISTRO.fullmatch(name):
            continue
        value = float(seconds)
        if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            continue
        overall.setdefault(key, []).append(value)
        per.setdefault(name, {}).setdefault(key, []).append(value)
    runs = len(conn.execute(sql, params).fetchall())
    return Durations(
        tests={k: round(statistics.median(v), 3) for k, v in overall.items()},
        distros={
            d: {k: round(statistics.median(v), 3) for k, v in t.items()} for d, t in per.items()
        },
        runs=runs,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source or None,
    )


def write_snapshot(durations: Durations, path: Path) -> None:
    text = json.dumps(durations.to_json(), indent=1) + "\n"
    write_atomic(path, text.encode("utf-8"))


# -- from a file (outside text) -----------------------------------------------------------


class DurationsError(UsageError):
    """A durations file that cannot be used: one line naming the file and the field."""


def _seconds(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DurationsError(f"{where}: not a number of seconds: {str(value)[:40]!r}")
    seconds = float(value)
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
        raise DurationsError(f"{where}: {seconds!r} seconds is out of range (0 to {MAX_SECONDS:g})")
    return seconds


def _table(where: str, value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise DurationsError(f"{where}: not an object of test -> seconds")
    table: dict[str, float] = {}
    for key, seconds in value.items():
        if not _KEY.fullmatch(key):
            raise DurationsError(f"{where}: {key[:80]!r} is not a test name")
        table[key] = _seconds(f"{where}.{key}", seconds)
    return table


def parse_snapshot(data: bytes, source: str = "durations") -> Durations:
    """The snapshot in `data`; DurationsError (exit 2, one line) when it is not one."""
    if len(data) > MAX_BYTES:
        raise DurationsError(f"{source}: {len(data)} bytes, over the {MAX_BYTES} allowed")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DurationsError(
            f"{source}: not JSON: {why}", hint="write one with klab history --export-durations"
        ) from None
    if not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise DurationsError(
            f"{source}: not a klab durations snapshot (kind must be {KIND!r})",
            hint="write one with klab history --export-durations FILE",
        )
    if raw.get("format") != FORMAT:
        raise DurationsError(
            f"{source}: format {str(raw.get('format'))[:20]}: this klab reads format {FORMAT}"
        )
    tests = _table(f"{source}: tests", raw.get("tests", {}))
    distros_raw = raw.get("distros", {})
    if not isinstance(distros_raw, dict):
        raise DurationsError(f"{source}: distros: not an object of distro -> tests")
    distros: dict[str, dict[str, float]] = {}
    for name, table in distros_raw.items():
        if not _DISTRO.fullmatch(name):
            raise DurationsError(f"{source}: distros: {name[:80]!r} is not a distro name")
        distros[name] = _table(f"{source}: distros.{name}", table)
    runs = raw.get("runs", 0)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 0:
        raise DurationsError(f"{source}: runs: not a count: {str(runs)[:40]!r}")
    created = raw.get("created")
    durations = Durations(
        tests, distros, runs, created if isinstance(created, str) else None, source
    )
    recorded = raw.get("digest")
    if recorded is not None:
        if not isinstance(recorded, str) or not _DIGEST.fullmatch(recorded):
            raise DurationsError(f"{source}: digest: not sha256:<64 hex digits>")
        if recorded != durations.digest:
            raise DurationsError(
                f"{source}: the digest does not match the durations (edited by hand?)",
                hint="export it again, or delete the digest line to have it recomputed",
            )
    return durations


def load_snapshot(path: Path) -> Durations:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise DurationsError(f"--durations {path}: no such file") from None
    except OSError as exc:
        raise DurationsError(f"--durations {path}: cannot read: {exc.strerror}") from None
    return parse_snapshot(data, f"--durations {path}")
