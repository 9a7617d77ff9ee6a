"""The files a finished run leaves in its directory: matrix, summary, JUnit, run.json.

Written once every distro is judged, from the outcomes alone, so the four files always say
the same thing about the same run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from imagefactory.report.render import write_run_report
from imagefactory.testrun import artifacts as paths
from imagefactory.testrun.baseline import Baseline, baseline_record
from imagefactory.testrun.judged_record import judged_record
from imagefactory.testrun.junit import write_junit
from imagefactory.testrun.matrix import Matrix, build_matrix, format_plain
from imagefactory.testrun.outcome import DistroOutcome, stage_exit_status
from imagefactory.testrun.report import markdown_summary, write_markdown
from imagefactory.testrun.selection import Selection

INDENTED_TESTS = 500
"""Up to this many test verdicts run.json is indented for a reader; above it, compact."""


def run_json_text(run: Mapping[str, object]) -> str:
    """run.json's text: indented for a reader when small, compact when large.

    `indent` makes the json module fall back to its pure-Python encoder, ten times slower
    than the C one: 0.5 s for a merged run of 15,000 tests.  Nothing reads run.json by
    its layout (every reader parses it), and a large one is read with jq anyway.
    """
    distros = run.get("distros")
    tests = sum(len(d.get("tests", ())) for d in distros) if isinstance(distros, list) else 0
    if tests <= INDENTED_TESTS:
        return json.dumps(run, indent=2) + "\n"
    return json.dumps(run, separators=(",", ":")) + "\n"


def write_run_files(
    run_directory: Path,
    run_id: str,
    selection: Selection,
    outcomes: Sequence[DistroOutcome],
    *,
    baseline: Baseline | None = None,
    timing: Sequence[str] = (),
    extra: Mapping[str, object] | None = None,
    history: Path | None = None,
    wall_s: float | None = None,
    judged: bool = True,
    matrix: Matrix | None = None,
) -> dict[str, Path]:
    """matrix.txt, summary.md, junit.xml and run.json in the run directory.

    run.json names the baseline files and their digest: which facts judged the run.
    `timing` is summary.md's "Timing" section (`History.timing_section`); `extra` adds keys
    to run.json (a merged run's sources and completeness: testrun/merge.py).  Then
    report.html (imagefactory/report; `history` gives its trends), never failing the run.
    `wall_s` is the run's wall-clock time (matrix.txt's `total wall:`), None if unknown.
    `judged` adds each distro's judged record (`judged_record`: what `klab results merge`
    trusts instead of judging again); a merged run, whose pieces carry their own, has none.
    `matrix` is the run's matrix when the caller built it already (to print it too).
    """
    run_directory.mkdir(parents=True, exist_ok=True)
    if matrix is None:
        matrix = build_matrix(outcomes, selection=selection, wall_s=wall_s)
    files = {
        "matrix": run_directory / paths.MATRIX_FILE,
        "summary": run_directory / paths.SUMMARY_FILE,
        "junit": run_directory / paths.JUNIT_FILE,
        "run": run_directory / paths.RUN_FILE,
    }
    files["matrix"].write_text(format_plain(matrix), encoding="utf-8")
    text = markdown_summary(
        outcomes, run_id=run_id, selection=selection.canonical, matrix=matrix, timing=timing
    )
    write_markdown(files["summary"], text)
    write_junit(files["junit"], outcomes, name=f"klab {selection.canonical}")
    entries: list[dict[str, object]] = [
        {
            "distro": o.distro,
            "status": str(o.status),
            "message": o.message,
            "golden_build_id": o.golden_build_id,
            "zfs_version": o.zfs_version,
            "suite_version": o.suite_version,
            "duration_s": o.duration_s,
            "counts": dataclasses.asdict(o.counts),
            "unexpected": o.unexpected,
            "verdicts": o.judgement.counts(),
            "tests": [v.to_json() for v in o.verdicts.values()],
            "context": dataclasses.asdict(o.context),
            "artifacts_dir": o.artifacts_dir,
        }
        for o in outcomes
    ]
    run = {
        "run_id": run_id,
        "selection": selection.canonical,
        "selected": list(selection.items),
        "exit_status": stage_exit_status(outcomes),
        "baseline": baseline_record(baseline),
        "distros": entries,
    }
    if judged:
        for outcome, entry in zip(outcomes, entries, strict=True):
            record = judged_record(outcome, entry)
            if record is not None:
                entry["judged"] = record
    if selection.shard is not None:  # which part ran, and the whole split (results merge)
        run["shard"] = selection.shard.record(selection.unsharded)
    run.update(extra or {})
    files["run"].write_text(run_json_text(run), encoding="utf-8")
    report = write_run_report(run_directory, history=history)
    if report is not None:
        files["report"] = report
    return files
