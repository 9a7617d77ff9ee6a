"""A golden's behavioural fingerprint: what one run of it measured, kept to compare builds.

A fingerprint is derived from a finished run of the golden -- `klab rc`'s own gating run,
or the quick suite `klab fingerprint capture` runs when no run of the current golden exists
-- never from a separate measurement, so it costs no extra boot.  It holds the quick
suite's per-test durations (clean passes only: a failed or retried test's time says nothing
about speed), zio latency percentiles per operation, txg sync p50/p99, the ARC hit ratio
(all from the run's `bpftrace/*.json`, every
clone's and boot's combined), and the facts a comparison must match or explain:
kernel, OpenZFS version, accelerator, module parameters.

Stored as JSON in the state directory, `fingerprints/<distro>/<build id>.json`, one per
golden build: tied to the build id, so a rebuilt golden gets a new one and an old build's
stays comparable.  Schema `klab-fingerprint/1`::

    {"schema": "klab-fingerprint/1", "distro": "debian13", "build_id": "...",
     "run_id": "...", "selection": "suite=quick", "captured": "2026-12-02T21:00:00Z",
     "facts": {"kernel": ..., "zfs_version": ..., "accel": "kvm", "module_params": {...}|null},
     "metrics": {"duration/cli_root/zpool_create/zpool_create_001_pos": 3.0,
                 "zio/read/p50_s": 0.000512, "zio/read/p99_s": ..., "txg/sync_p50_s": ...,
                 "txg/sync_p99_s": ..., "arc/hit_ratio": 0.93}}

Comparing two of them is `fingerprint_drift.py`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagefactory.atomic import write_atomic
from imagefactory.errors import UsageError

SCHEMA = "klab-fingerprint/1"
FINGERPRINT_DIR = "fingerprints"
SELECTION = "suite=quick"
"""What a fingerprint is measured on: the quick suite (also `klab rc`'s default gate)."""
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


def fingerprints_dir(state: Path | None = None) -> Path:
    from imagefactory.testrun.history import state_dir

    return (state if state is not None else state_dir()) / FINGERPRINT_DIR


def _check_name(value: str, what: str) -> str:
    if not _SAFE.fullmatch(value):
        raise UsageError(f"{value!r} is not a valid {what} (letters, digits, . _ : + -)")
    return value


def fingerprint_path(distro: str, build_id: str, state: Path | None = None) -> Path:
    return (
        fingerprints_dir(state)
        / _check_name(distro, "distro")
        / f"{_check_name(build_id, 'build id')}.json"
    )


def _run_json(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir / 'run.json'}: cannot read it: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("distros"), list):
        raise UsageError(f"{run_dir / 'run.json'}: not a klab run.json")
    return data


def _durations(artifacts: Path) -> dict[str, float]:
    """Clean passes' seconds from the run's console (run.json keeps verdicts, not times)."""
    from imagefactory.testrun.results import PASS, parse_file

    log = artifacts / "test.log"
    if not log.is_file():
        return {}
    return {
        f"duration/{t.key}": float(t.duration_s)
        for t in parse_file(log).tests
        if t.result == PASS and t.duration_s is not None and tuple(t.attempts or (PASS,)) == (PASS,)
    }


def _recorded_durations(history: Path, run_id: str, distro: str) -> dict[str, float]:
    """Clean passes' seconds as the history recorded them; empty when it lacks the run."""
    from imagefactory.testrun.history import History

    if not history.exists():
        return {}
    with History.open(history, readonly=True) as db:
        rows = db.conn.execute(
            """SELECT t.test, t.identifier, t.duration_s FROM runs r
               JOIN distro_results d ON d.run = r.id
               JOIN test_results t ON t.distro_result = d.id
               WHERE r.run_id = ? AND d.distro = ? AND t.result = 'PASS'
                 AND t.failed_attempts = 0 AND t.duration_s IS NOT NULL""",
            (run_id, distro),
        ).fetchall()
    return {
        f"duration/{test}" + (f" ({ident})" if ident else ""): float(seconds)
        for test, ident, seconds in rows
    }


def _trace_metrics(artifacts: Path) -> dict[str, float]:
    from imagefactory.testrun.bpftrace_files import distro_traces
    from imagefactory.testrun.bpftrace_units import merge_buckets, quantile

    # Every clone and boot of the distro combined; a trace some clone lacks (or whose
    # pieces disagree) measured part of the run and would pass for drift: left out.
    def complete(name: str) -> dict[str, Any] | None:
        doc = distro_traces(artifacts, name)
        return doc if doc is not None and doc.get("complete") else None

    metrics: dict[str, float] = {}
    zio = complete("zio")
    if zio and zio.get("attached"):
        for op, figures in (zio.get("summary", {}).get("ops") or {}).items():
            for name in ("p50_s", "p99_s"):
                if isinstance(figures.get(name), (int, float)):
                    metrics[f"zio/{op}/{name}"] = float(figures[name])
    txg = complete("txg")
    if txg and txg.get("attached"):
        parts = [
            buckets
            for interval in txg.get("intervals", [])
            for buckets in (
                interval.get("maps", {}).get("sync_ms", {}).get("series") or {}
            ).values()
        ]
        merged = merge_buckets(parts)
        for name, q in (("sync_p50_s", 0.5), ("sync_p99_s", 0.99)):
            value = quantile(merged, q)
            if value is not None:
                metrics[f"txg/{name}"] = value
    arc = complete("arc")
    ratio = (arc or {}).get("summary", {}).get("hit_ratio") if arc and arc.get("attached") else None
    if isinstance(ratio, (int, float)):
        metrics["arc/hit_ratio"] = float(ratio)
    return metrics


MAX_PARAMS_FILE = 1024 * 1024
"""The module has a few hundred parameters of a few bytes each: more is not that file."""


def _module_params(artifacts: Path) -> dict[str, str] | None:
    """`zfs-params.txt` (name=value lines, written by the guest's collection) of the
    distro's clone (the first clone's when several ran: one golden, one module); None when
    no boot collected it."""
    from imagefactory.testrun.bpftrace_files import piece_dirs

    for piece in piece_dirs(artifacts):  # run order: the distro's own, clone-1, clone-2, ...
        try:
            with (piece / "zfs-params.txt").open("rb") as fh:
                text = fh.read(MAX_PARAMS_FILE).decode("utf-8", errors="replace")
        except OSError:
            continue
        return parse_module_params(text)
    return None


def parse_module_params(text: str) -> dict[str, str]:
    """name=value lines; a line without `=` or with an empty name is not a parameter."""
    params: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            params[name.strip()] = value.strip()
    return params


def derive(
    run_dir: Path, distro: str, *, history: Path | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The fingerprint of `distro`'s golden from the finished run in `run_dir`: durations
    as the history recorded them (the console's when the history lacks the run), the rest
    from the run's bpftrace JSON."""
    run = _run_json(run_dir)
    entry = next(
        (d for d in run["distros"] if isinstance(d, dict) and d.get("distro") == distro), None
    )
    if entry is None:
        raise UsageError(f"run {run.get('run_id')} did not run {distro}")
    build_id = entry.get("golden_build_id")
    if not build_id:
        raise UsageError(f"run {run.get('run_id')} records no golden build id for {distro}")
    artifacts = run_dir / distro
    if not artifacts.is_dir() and entry.get("artifacts_dir"):
        artifacts = Path(str(entry["artifacts_dir"]))
    from imagefactory.testrun.history import default_db_path

    durations = _recorded_durations(history or default_db_path(), str(run.get("run_id")), distro)
    metrics = {**(durations or _durations(artifacts)), **_trace_metrics(artifacts)}
    if not metrics:
        raise UsageError(
            f"run {run.get('run_id')} measured nothing on {distro} (no passing test, no trace)",
            hint="a fingerprint needs a run that ran tests: `klab test DISTRO --suite quick`",
        )
    context = entry.get("context") or {}
    return {
        "schema": SCHEMA,
        "distro": distro,
        "build_id": str(build_id),
        "run_id": run.get("run_id"),
        "selection": run.get("selection"),
        "captured": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "facts": {
            "kernel": context.get("kernel"),
            "zfs_version": entry.get("zfs_version"),
            "accel": context.get("accel"),
            "module_params": _module_params(artifacts),
        },
        "metrics": dict(sorted(metrics.items())),
    }


def save(fingerprint: dict[str, Any], state: Path | None = None) -> Path:
    path = fingerprint_path(fingerprint["distro"], fingerprint["build_id"], state)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(fingerprint, indent=1) + "\n").encode("utf-8"))
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable fingerprint: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UsageError(f"{path}: not a {SCHEMA} file")
    if not isinstance(data.get("metrics"), dict) or not isinstance(data.get("facts"), dict):
        raise UsageError(f"{path}: no metrics or facts")
    return data


def stored(distro: str, state: Path | None = None) -> list[dict[str, Any]]:
    """Every fingerprint of `distro`, oldest capture first."""
    folder = fingerprints_dir(state) / _check_name(distro, "distro")
    found = [load(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(found, key=lambda f: (str(f.get("captured")), str(f.get("build_id"))))


def run_of_golden(history: Path, distro: str, build_id: str) -> Path | None:
    """The newest run directory of a quick-suite run of this golden build that ran tests."""
    from imagefactory.testrun.history import History

    if not history.exists():
        return None
    with History.open(history, readonly=True) as db:
        rows = db.conn.execute(
            """SELECT r.run_id, d.artifacts_dir FROM runs r
               JOIN distro_results d ON d.run = r.id
               WHERE d.distro = ? AND d.golden_build_id = ? AND r.selection = ?
                 AND d.passed + d.failed + d.killed > 0
               ORDER BY r.started DESC, r.id DESC""",
            (distro, build_id, SELECTION),
        ).fetchall()
    for _run_id, artifacts in rows:
        if artifacts and (Path(artifacts).parent / "run.json").is_file():
            return Path(artifacts).parent
    return None
