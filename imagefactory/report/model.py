"""What the report shows, gathered from a run directory and (when there is one) the history.

The run directory is the source of truth: `run.json` (verdicts per distro and test, the
golden each distro ran), each distro's artifacts (test logs for the failure excerpts,
`bpftrace/*.json` for the charts) and `drift.json` when `klab rc` wrote one.  The history
adds what one run cannot know: durations, the pass rate over the last runs, the slowest
tests and the tests that got slower.  It is opened read-only and is optional: a report of a
run copied to a laptop without its history simply has no trend section.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from imagefactory.errors import ImageFactoryError, UsageError
from imagefactory.report.charts import trace_charts
from imagefactory.testrun.artifacts import RUN_FILE
from imagefactory.testrun.bpftrace_files import piece_dirs
from imagefactory.testrun.test_logs import locate_test_logs

log = structlog.get_logger(__name__)

EXCERPT_LINES = 30
EXCERPT_BYTES = 4096
"""A failure's excerpt: the end of its log (where the failure is), at most this much."""
FAILING = ("unexpected-failure", "crashed")
DRIFT_FILE = "drift.json"


@dataclass
class Failure:
    distro: str
    test: str
    verdict: str
    result: str
    attempts: list[str]
    reason: str | None
    excerpt: str | None
    log_link: str | None


@dataclass
class DistroInfo:
    name: str
    status: str
    message: str | None
    build_id: str | None
    zfs_version: str | None
    suite_version: str | None
    kernel: str | None
    accel: str | None
    duration_s: float | None
    verdicts: dict[str, int]
    links: dict[str, str]
    traces: dict[str, Any]


@dataclass
class ReportData:
    run_id: str
    selection: str
    exit_status: int | None
    distros: list[DistroInfo]
    tests: list[str]
    cells: dict[str, dict[str, dict[str, Any]]]
    """test → distro → {"verdict", "result", "attempts", "reason"}."""
    failures: list[Failure]
    trends: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not readable as JSON: {exc}") from exc


def load_run(run_dir: Path) -> dict[str, Any]:
    run = _load_json(run_dir / RUN_FILE)
    if run is None:
        raise UsageError(
            f"{run_dir} has no {RUN_FILE}: not a finished run directory",
            hint="`klab history` lists the runs; a run writes run.json when it ends",
        )
    if not isinstance(run, dict) or not isinstance(run.get("distros"), list):
        raise UsageError(f'{run_dir / RUN_FILE}: no "distros" list (not a klab run.json)')
    return run


def _excerpt(path: Path) -> str:
    """The end of a log: the last EXCERPT_LINES lines within EXCERPT_BYTES."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - EXCERPT_BYTES))
        data = handle.read(EXCERPT_BYTES)
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > EXCERPT_BYTES and lines:
        lines = lines[1:]  # the first line is cut
    return "\n".join(lines[-EXCERPT_LINES:])


def _link(run_dir: Path, path: Path) -> str | None:
    """`path` relative to the run directory (links keep working when the run is copied)."""
    try:
        return path.relative_to(run_dir).as_posix()
    except ValueError:
        pass
    try:
        return path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:
        return path.as_uri() if path.is_absolute() else None


ARTIFACT_FILES = ("test.log", "console.log", "crash.txt", "dmesg.txt", "system.txt", "runner.log")
"""Linked from the distro's row, for the distro's directory and each clone/boot/shard piece."""


def _artifacts_dir(run_dir: Path, entry: dict[str, Any]) -> Path:
    """The distro's directory: next to run.json first (a run copied elsewhere keeps working)."""
    local = run_dir / str(entry.get("distro", ""))
    if local.is_dir():
        return local
    recorded = entry.get("artifacts_dir")
    return Path(recorded) if isinstance(recorded, str) and recorded else local


def _test_log(directory: Path | None) -> Path | None:
    """A test's own output in its results directory: `merged` (stdout and stderr), else
    `stdout`."""
    if directory is None:
        return None
    for name in ("merged", "stdout", "stderr"):
        if (directory / name).is_file():
            return directory / name
    return None


def _failures(run_dir: Path, entry: dict[str, Any], tests: list[dict[str, Any]]) -> list[Failure]:
    failing = [t for t in tests if t.get("verdict") in FAILING]
    if not failing:
        return []
    names = [str(t["name"]) for t in failing]
    # Each clone, boot and shard brought its own results home: the newest piece that has a
    # test's log is where it last ran (a crash retry runs the interrupted section again).
    pieces = list(reversed(piece_dirs(_artifacts_dir(run_dir, entry))))
    found = [locate_test_logs(piece / "test_results", names) for piece in pieces]
    out = []
    for t in failing:
        name = str(t["name"])
        path = next((p for logs in found if (p := _test_log(logs.get(name)))), None)
        if path is None and name.startswith("recipes/"):
            path = next((c for piece in pieces if (c := piece / f"{name}.log").is_file()), None)
        excerpt = None
        if path is not None:
            try:
                excerpt = _excerpt(path)
            except OSError as exc:
                excerpt = f"(cannot read {path.name}: {exc.strerror})"
        out.append(
            Failure(
                distro=str(entry.get("distro")),
                test=name,
                verdict=str(t.get("verdict")),
                result=str(t.get("result")),
                attempts=[str(a) for a in t.get("attempts") or []],
                reason=t.get("reason"),
                excerpt=excerpt,
                log_link=_link(run_dir, path) if path is not None else None,
            )
        )
    return out


def _traces(artifacts: Path) -> dict[str, Any]:
    """Each script's trace of the distro, every clone and boot combined."""
    from imagefactory.testrun.bpftrace import SCRIPTS
    from imagefactory.testrun.bpftrace_files import distro_traces

    return {name: doc for name in SCRIPTS if (doc := distro_traces(artifacts, name)) is not None}


def _distro(run_dir: Path, entry: dict[str, Any]) -> DistroInfo:
    artifacts = _artifacts_dir(run_dir, entry)
    context = entry.get("context") or {}
    links = {
        (name if piece == artifacts else f"{piece.relative_to(artifacts)}/{name}"): link
        for piece in piece_dirs(artifacts)
        for name in ARTIFACT_FILES
        if (piece / name).is_file() and (link := _link(run_dir, piece / name))
    }
    traces = _traces(artifacts)
    return DistroInfo(
        name=str(entry.get("distro")),
        status=str(entry.get("status")),
        message=entry.get("message"),
        build_id=entry.get("golden_build_id"),
        zfs_version=entry.get("zfs_version"),
        suite_version=entry.get("suite_version"),
        kernel=context.get("kernel"),
        accel=context.get("accel"),
        duration_s=entry.get("duration_s"),
        verdicts=dict(Counter(str(t.get("verdict")) for t in entry.get("tests") or [])),
        links=links,
        traces=trace_charts(traces),
    )


def gather(run_dir: Path, *, history: Path | None = None) -> ReportData:
    """Everything the page shows; the history part is skipped (with a note) when absent."""
    run = load_run(run_dir)
    distros: list[DistroInfo] = []
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    failures: list[Failure] = []
    for entry in run["distros"]:
        if not isinstance(entry, dict):
            continue
        tests = [t for t in entry.get("tests") or [] if isinstance(t, dict) and "name" in t]
        info = _distro(run_dir, entry)
        distros.append(info)
        for t in tests:
            cells.setdefault(str(t["name"]), {})[info.name] = {
                "verdict": t.get("verdict"),
                "result": t.get("result"),
                "attempts": t.get("attempts") or [],
                "reason": t.get("reason"),
            }
        failures += _failures(run_dir, entry, tests)
    drift = _load_json(run_dir / DRIFT_FILE)
    data = ReportData(
        run_id=str(run.get("run_id", run_dir.name)),
        selection=str(run.get("selection", "?")),
        exit_status=run.get("exit_status"),
        distros=distros,
        tests=sorted(cells),
        cells=cells,
        failures=failures,
        drift=drift if isinstance(drift, dict) else None,
    )
    _add_trends(data, history)
    return data


def _add_trends(data: ReportData, history: Path | None) -> None:
    from imagefactory.report.trends import history_trends

    try:
        data.trends = history_trends(data.run_id, [d.name for d in data.distros], history)
    except ImageFactoryError as exc:
        log.warning("report.no_trends", error=str(exc))
        data.notes.append(f"No trends: {exc}")
