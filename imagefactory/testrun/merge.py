"""`klab results merge`: run directories from different machines become one run.

Each shard of a CI matrix writes its own run directory; the merge job turns them into the
run one big machine would have written: one column per distro in matrix.txt, summary.md,
junit.xml, run.json, and the history rows.  Why re-judge instead of adding up the shards'
reports: the verdicts must come from one baseline, and the history needs every test's time
and log, which only the artifacts hold.  So each piece (a distro's part of one shard) is
judged again from its artifacts with the stage's own judge, then the pieces are combined.

Refused without `--force` (exit 2): runs of different selections, durations snapshots,
shard counts, splits, baselines, or goldens of one distro.  A shard absent from the inputs
makes its distros `infra-error` ("incomplete: shard 2/3 missing"), exit 3: a run with a
hole in it must not pass.  Idempotent: the merged run id is derived from the inputs' run
ids, so merging the same directories again rewrites the same files and replaces the same
history rows; an input that is already inside a merged input is skipped.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from imagefactory.errors import UsageError
from imagefactory.testrun.artifacts import RUN_FILE
from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.collect import GoldenFacts, Judged, Judging, judge
from imagefactory.testrun.history import History
from imagefactory.testrun.judge import Judgement
from imagefactory.testrun.judged_record import trusted_outcome
from imagefactory.testrun.matrix import Matrix, build_matrix
from imagefactory.testrun.merge_inputs import Piece, RunInput, read_run
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus, stage_exit_status
from imagefactory.testrun.results import ABSENT, TestResult, locate_test_logs, merge_counts
from imagefactory.testrun.run_files import write_run_files

_WORST = {
    DistroStatus.PASSED: 0,
    DistroStatus.FAILED: 1,
    DistroStatus.INCOMPLETE: 2,
    DistroStatus.NO_RESULTS: 3,
    DistroStatus.INFRA_ERROR: 4,
    DistroStatus.NOT_BUILT: 5,
}
_UNTRUSTED = {DistroStatus.INFRA_ERROR, DistroStatus.NOT_BUILT}
"""Pieces whose artifacts say nothing: their recorded outcome is kept, not re-judged."""


@dataclass
class Merged:
    run_id: str
    run_dir: Path
    outcomes: list[DistroOutcome]
    files: dict[str, Path]
    exit_status: int
    matrix: Matrix
    """What matrix.txt shows (the command prints it)."""
    skipped: list[str] = field(default_factory=list)
    """Inputs left out because another input already holds them."""
    missing: dict[str, list[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def merged_run_id(inputs: Sequence[RunInput]) -> str:
    """The same inputs always give the same id: the earliest timestamp and a digest."""
    ids = sorted({i.run_id for i in inputs} | {m for i in inputs for m in i.merged_from})
    stamp = min((i.split("-", 1)[0] for i in ids), default="merged")
    return f"{stamp}-m{hashlib.sha256(' '.join(ids).encode()).hexdigest()[:10]}"


def _started(run_id: str) -> datetime | None:
    try:
        return datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _differ(inputs: Sequence[RunInput], what: str, values: dict[str, object]) -> str | None:
    if len(set(map(str, values.values()))) <= 1:
        return None
    shown = "; ".join(f"{run}: {value}" for run, value in values.items())
    return f"different {what} ({shown})"


def check_inputs(inputs: Sequence[RunInput]) -> list[str]:
    """Why these runs are not parts of one run (empty when they are)."""
    problems = [
        _differ(inputs, "selections", {i.run_id: i.selection for i in inputs}),
        _differ(inputs, "durations snapshots", {i.run_id: i.durations_digest for i in inputs}),
        _differ(inputs, "shard counts", {i.run_id: i.count for i in inputs}),
        _differ(inputs, "baselines", {i.run_id: i.baseline_digest for i in inputs}),
    ]
    goldens: dict[str, dict[str, object]] = {}
    splits: dict[str, dict[str, object]] = {}
    for run in inputs:
        for piece in run.pieces:
            goldens.setdefault(piece.distro, {})[run.run_id] = piece.golden_build_id
        for distro, split in run.splits.items():
            splits.setdefault(distro, {})[run.run_id] = hashlib.sha256(
                json.dumps(split, sort_keys=True).encode()
            ).hexdigest()[:12]
    for distro, builds in sorted(goldens.items()):
        problems.append(_differ(inputs, f"{distro} goldens", builds))
    for distro, digests in sorted(splits.items()):
        problems.append(_differ(inputs, f"{distro} splits", digests))
    return [p for p in problems if p is not None]


def _link_tree(source: Path, target: Path) -> None:
    """A piece's artifacts under the merged run: hard links where possible, else copies."""
    if source.resolve() == target.resolve():
        return
    if target.exists():
        shutil.rmtree(target)

    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, target, copy_function=link, symlinks=True)


def _recorded(
    piece: Piece, run: RunInput, baseline: Baseline | None
) -> tuple[Judged | None, str | None]:
    """The piece as its run judged it, when run.json's judged record still holds (else None
    and why not): parsing and judging again is most of a merge's time."""
    selection = run.as_selection()
    if piece.recorded is None or selection.mode == "recipe":
        return None, None
    outcome, why = trusted_outcome(
        str(run.path / RUN_FILE),
        piece.recorded,
        piece.directory,
        baseline_digest=run.baseline_digest,
        judged_with=baseline.digest if baseline is not None else None,
    )
    if outcome is None:
        return None, why
    results = piece.directory / "test_results"
    found = locate_test_logs(results, [t.key for t in outcome.tests]) if results.is_dir() else {}
    return Judged(outcome, {k: str(p.relative_to(piece.directory)) for k, p in found.items()}), None


def _judge_piece(
    piece: Piece, run: RunInput, baseline: Baseline | None, target: Path
) -> tuple[DistroOutcome, dict[str, str], str | None]:
    """The piece's outcome, its tests' log paths (under the merged run) and, when run.json's
    verdicts could not be used, why they were judged again."""
    status = DistroStatus(piece.status) if piece.status in _WORST else DistroStatus.INFRA_ERROR
    facts = GoldenFacts(piece.golden_build_id, piece.zfs_version, piece.suite_version)
    if status in _UNTRUSTED or not piece.directory.is_dir():
        why = piece.message or f"{piece.directory} is missing"
        outcome = DistroOutcome.failed_infrastructure(
            piece.distro,
            why,
            not_built=status is DistroStatus.NOT_BUILT,
            duration_s=piece.duration_s,
            **facts.outcome_fields(),
        )
        return outcome, {}, None
    judged, distrust = _recorded(piece, run, baseline)
    if judged is None:
        judged = judge(
            piece.distro,
            piece.directory,
            run.as_selection(),
            facts,
            duration=piece.duration_s,
            judging=Judging(baseline, piece.accel),
        )
    outcome = judged.outcome
    if _WORST[status] > _WORST[outcome.status]:  # never greener than what the shard saw
        outcome.status = status
        outcome.message = piece.message
    _link_tree(piece.directory, target)
    return outcome, {k: f"{target.name}/{v}" for k, v in judged.log_paths.items()}, distrust


def combine(
    distro: str, pieces: Sequence[tuple[int | str, DistroOutcome]], count: int, artifacts: Path
) -> DistroOutcome:
    """One distro's outcome from its shards' outcomes (ABSENT reported by several counts once).

    A piece named by a string (`clone 2/3`, a test stage's boot: testrun/clones.py) is
    labelled so in the messages; a number is a shard `i/count`."""
    first = pieces[0][1]
    tests: list[TestResult] = []
    seen: set[str] = set()
    judgement = Judgement()
    summary: list[dict[str, int]] = []
    messages: list[str] = []
    status = DistroStatus.PASSED
    for index, outcome in pieces:
        kept = [t for t in outcome.tests if t.key not in seen]
        seen.update(t.key for t in kept)
        tests += kept
        for t in kept:
            if t.key in outcome.verdicts:
                judgement.verdicts[t.key] = outcome.verdicts[t.key]
        summary.append({k: n for k, n in outcome.summary.items() if k != ABSENT})
        judgement.warnings += [w for w in outcome.judgement.warnings if w not in judgement.warnings]
        judgement.review += [r for r in outcome.judgement.review if r not in judgement.review]
        judgement.disagreements += outcome.judgement.disagreements
        judgement.unseen_failures += outcome.judgement.unseen_failures
        if outcome.judgement.mismatch_line:
            label = index if isinstance(index, str) else f"shard {index}/{count}"
            line = f"{label}: {outcome.judgement.mismatch_line}"
            judgement.mismatch_line = "; ".join(filter(None, [judgement.mismatch_line, line]))
        if _WORST[outcome.status] > _WORST[status]:
            status = outcome.status
        if outcome.message:
            label = index if isinstance(index, str) else f"shard {index}/{count}"
            messages.append(f"{label}: {outcome.message}" if count > 1 else outcome.message)
    absent = sum(1 for t in tests if t.result == ABSENT)
    durations = [o.duration_s for _, o in pieces if o.duration_s is not None]
    return DistroOutcome(
        distro=distro,
        status=status,
        tests=tests,
        summary=merge_counts(*summary, {ABSENT: absent}),
        unexpected=list(dict.fromkeys(n for _, o in pieces for n in o.unexpected)),
        report_present=any(o.report_present for _, o in pieces),
        duration_s=sum(durations) if durations else None,
        golden_build_id=first.golden_build_id,
        zfs_version=first.zfs_version,
        suite_version=first.suite_version,
        artifacts_dir=str(artifacts),
        message="; ".join(messages) or None,
        verdicts=judgement.verdicts,
        context=first.context,
        baseline_digest=first.baseline_digest,
        judgement=judgement,
    )


def _select_inputs(inputs: list[RunInput]) -> tuple[list[RunInput], list[str]]:
    """Drop repeats and runs another input already merged."""
    inside = {m for run in inputs for m in run.merged_from}
    chosen: list[RunInput] = []
    skipped: list[str] = []
    for run in inputs:
        if run.run_id in inside or any(c.run_id == run.run_id for c in chosen):
            skipped.append(f"{run.path} (run {run.run_id}: already included)")
            continue
        chosen.append(run)
    return chosen, skipped


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """A merge builds some 10^5 objects per 1,000 tests, all alive until it ends: the cycle
    collector rescans them again and again for nothing (a third of a big merge's time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def merge_runs(
    paths: Sequence[Path],
    out: Path | None,
    *,
    runs_root: Path,
    baseline: Baseline | None,
    history: Path | None,
    force: bool = False,
) -> Merged:
    """Merge the run directories at `paths` into `out` (default: `runs_root/<merged id>`)."""
    with _without_cycle_collection():
        return _merge(paths, out, runs_root=runs_root, baseline=baseline, history=history,
                      force=force)  # fmt: skip


def _merge(
    paths: Sequence[Path],
    out: Path | None,
    *,
    runs_root: Path,
    baseline: Baseline | None,
    history: Path | None,
    force: bool,
) -> Merged:
    inputs, skipped = _select_inputs([read_run(p) for p in paths])
    problems = check_inputs(inputs)
    notes: list[str] = []
    if problems and not force:
        raise UsageError(
            "these runs are not parts of one run: " + "; ".join(problems),
            hint="merge shards of one selection, snapshot and golden build; --force merges anyway",
        )
    notes += [f"merged anyway (--force): {p}" for p in problems]
    recorded = {i.baseline_digest for i in inputs}
    given = baseline.digest if baseline is not None else None
    if recorded != {given}:
        if not force:
            raise UsageError(
                f"the shards were judged with baseline {', '.join(map(str, recorded))}, "
                f"this merge would judge with {given}",
                hint="give the same --baseline (or --no-baseline), or --force to judge anew",
            )
        notes.append(f"judged again with baseline {given} (--force)")
    run_id = merged_run_id(inputs)
    run_dir = out if out is not None else runs_root / run_id
    if any(run_dir.resolve() == i.path.resolve() for i in inputs):
        raise UsageError(f"--out {run_dir} is one of the inputs", hint="merge into a new directory")
    count = max(i.count for i in inputs)
    by_distro: dict[str, list[tuple[Piece, RunInput]]] = {}
    for run in inputs:
        for piece in run.pieces:
            by_distro.setdefault(piece.distro, []).append((piece, run))
    outcomes: list[DistroOutcome] = []
    log_paths: dict[str, dict[str, str]] = {}
    pieces_record: dict[str, list[dict[str, object]]] = {}
    missing: dict[str, list[int]] = {}
    for distro in sorted(by_distro):
        judged: list[tuple[int, DistroOutcome]] = []
        paths_here: dict[str, str] = {}
        for piece, run in sorted(by_distro[distro], key=lambda pr: (pr[0].index, pr[1].run_id)):
            if any(i == piece.index for i, _ in judged):
                raise UsageError(
                    f"{distro} shard {piece.index}/{count} is in more than one input "
                    f"(again in {run.path})",
                    hint="give each shard's run directory once",
                )
            target = run_dir / distro / f"shard-{piece.index}-of-{count}"
            outcome, found, why = _judge_piece(piece, run, baseline, target)
            if why:
                notes.append(
                    f"{distro} shard {piece.index}/{count} ({run.path}): judged again: {why}"
                )
            judged.append((piece.index, outcome))
            paths_here.update(found)
            pieces_record.setdefault(distro, []).append(
                {"index": piece.index, "run_id": piece.run_id, "status": str(outcome.status),
                 "message": outcome.message, "duration_s": outcome.duration_s,
                 "dir": target.name}
            )  # fmt: skip
        outcome = combine(distro, judged, count, run_dir / distro)
        absent = [i for i in range(1, count + 1) if i not in {j for j, _ in judged}]
        if absent:
            missing[distro] = absent
            lost = _unrun(inputs, distro, absent)
            hole = f"incomplete: shard(s) {', '.join(f'{i}/{count}' for i in absent)} missing"
            outcome.status = DistroStatus.INFRA_ERROR
            outcome.message = "; ".join(filter(None, [f"{hole}{lost}", outcome.message]))
        outcomes.append(outcome)
        log_paths[distro] = paths_here
    selection = inputs[0].as_selection()
    timing = _record(history, run_id, selection.canonical, outcomes, log_paths, inputs)
    extra = _provenance(inputs, count, pieces_record, missing, notes)
    matrix = build_matrix(outcomes, selection=selection)
    files = write_run_files(
        run_dir, run_id, selection, outcomes, baseline=baseline, timing=timing, extra=extra,
        judged=False, matrix=matrix,
    )  # fmt: skip
    return Merged(run_id, run_dir, outcomes, files, stage_exit_status(outcomes), matrix,
                  skipped, missing, notes)  # fmt: skip


def _unrun(inputs: Sequence[RunInput], distro: str, absent: list[int]) -> str:
    for run in inputs:
        split = run.splits.get(distro)
        if split:
            tests = sum(1 for part in split.values() if part in absent)
            return f" ({tests} test(s) not run)"
    return ""


def _record(
    path: Path | None,
    run_id: str,
    selection: str,
    outcomes: Sequence[DistroOutcome],
    log_paths: dict[str, dict[str, str]],
    inputs: Sequence[RunInput],
) -> list[str]:
    """History rows for the merged run (replaced, not added, when merged again)."""
    with History.open(path) as history:
        # Merged before: the run is there already, and record_outcome replaces its rows.
        with contextlib.suppress(UsageError):
            history.start_run(
                run_id,
                selection=selection,
                command=["klab", "results", "merge", *(i.run_id for i in inputs)],
                started=_started(run_id),
            )
        history.record_outcomes(
            run_id, [(o, log_paths[o.distro]) for o in outcomes], lineage="ztest"
        )
        history.finish_run(run_id)
        return history.timing_section(run_id)


def _provenance(
    inputs: Sequence[RunInput],
    count: int,
    pieces: dict[str, list[dict[str, object]]],
    missing: dict[str, list[int]],
    notes: list[str],
) -> dict[str, object]:
    """run.json's account of where the merged run came from, and whether it is whole."""
    first = inputs[0]
    return {
        "merged_from": sorted(
            {i.run_id for i in inputs} | {m for i in inputs for m in i.merged_from}
        ),
        "complete": not missing,
        "missing_shards": missing,
        "notes": notes,
        "shard": {
            "index": None,
            "count": count,
            "selection": first.selection,
            "durations_digest": first.durations_digest,
            "distros": {
                d: {"tests": split, "expected_s": first.expected_s.get(d, [])}
                for d, split in first.splits.items()
            },
            "pieces": pieces,
        },
    }
