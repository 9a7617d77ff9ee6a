"""What a run's judging left in run.json, so `klab results merge` can trust it, not redo it.

Merging a CI matrix of 10 shards x 1,500 tests used to parse and judge every console again:
a second per merge.  Each distro entry of run.json now carries a `judged` record: the
results the verdicts rest on (one row per test), the parts of the judgement the other
fields lack, a digest of the evidence (the artifacts' files the judge reads) and a digest
binding all of it to the entry's verdicts and status.  The merge recomputes both digests
and uses the record only when they agree with what is on disk and with the baseline it
judges with; anything else (artifacts changed after judging, the entry edited, another
imagefactory version, another baseline) is judged again from the artifacts, with a note.

The digests detect damage and mismatches (a truncated CI artifact, a run.json from another
run, a hand-edited verdict); they are not a signature against someone who recomputes them.
A record that is not the shape below is a usage error naming the file and field.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from imagefactory.errors import UsageError
from imagefactory.testrun.judge import Judgement
from imagefactory.testrun.outcome import DistroOutcome, DistroStatus
from imagefactory.testrun.results import TestResult
from imagefactory.testrun.verdict import RunContext, TestVerdict, Verdict

FORMAT = 1
SKIPPED_DIRS = frozenset({"test_results", "bpftrace"})
"""Subtrees the judge does not read (per-test logs, traces); dot-dirs (a clone's disks) too."""

_ROW = tuple[
    StrictStr,  # name
    StrictStr,  # result
    StrictFloat | StrictInt | None,  # duration_s
    StrictBool,  # reran
    StrictStr | None,  # identifier
    StrictStr | None,  # user
    StrictStr | None,  # timestamp
    StrictStr | None,  # note
    list[StrictStr],  # attempts
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _Judgement(_Strict):
    warnings: list[StrictStr]
    review: list[StrictStr]
    disagreements: list[StrictStr]
    summary_mismatch: dict[StrictStr, Any] | None
    mismatch_line: StrictStr | None
    unseen_failures: StrictInt


class _Record(BaseModel):
    """Lax only where JSON cannot be strict (an array for a row's tuple); every scalar is."""

    model_config = ConfigDict(extra="forbid")
    format: StrictInt
    imagefactory: StrictStr
    evidence: StrictStr
    digest: StrictStr
    report_present: StrictBool
    summary: dict[StrictStr, StrictInt]
    judgement: _Judgement
    results: list[_ROW]


class _Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr
    verdict: Verdict
    result: StrictStr
    attempts: list[StrictStr]
    reason: StrictStr | None = None
    entry: StrictStr | None = None


class _Context(_Strict):
    distro: StrictStr | None
    zfs_version: StrictStr | None
    kernel: StrictStr | None
    accel: StrictStr | None


class _Entry(BaseModel):
    """The distro entry's fields the outcome is rebuilt from (the rest is bound by digest)."""

    model_config = ConfigDict(extra="ignore")
    distro: StrictStr
    status: DistroStatus
    message: StrictStr | None = None
    golden_build_id: StrictStr | None = None
    zfs_version: StrictStr | None = None
    suite_version: StrictStr | None = None
    duration_s: StrictFloat | StrictInt | None = None  # an int stays one (byte-identical files)
    unexpected: list[StrictStr] = []
    tests: list[_Verdict] = []
    context: _Context
    judged: _Record


def _version() -> str:
    import imagefactory

    return str(imagefactory.__version__)


def evidence_digest(artifacts: Path) -> str:
    """sha256 over every file the judge may read under `artifacts` (path, then content),
    leaving out per-test logs, traces and dot-dirs (a clone's multi-GiB scratch disks)."""
    total = hashlib.sha256()
    for relative, path in sorted(_evidence_files(artifacts, artifacts)):
        total.update(relative.encode("utf-8", "surrogateescape") + b"\0")
        with Path(path).open("rb") as handle:
            total.update(hashlib.file_digest(handle, "sha256").digest())
    return "sha256:" + total.hexdigest()


def _evidence_files(root: Path, directory: Path) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if not entry.name.startswith(".") and entry.name not in SKIPPED_DIRS:
                found += _evidence_files(root, Path(entry.path))
        elif entry.is_file(follow_symlinks=False):
            found.append((os.path.relpath(entry.path, root), entry.path))
    return found


def _row(test: TestResult) -> list[Any]:
    return [test.name, test.result, test.duration_s, test.reran, test.identifier, test.user,
            test.timestamp, test.note, list(test.attempts)]  # fmt: skip


def _binding(entry: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """The digest tying the record to the entry's verdicts, status and facts."""
    bound = {k: v for k, v in entry.items() if k not in ("judged", "artifacts_dir")}
    bound["judged"] = {k: v for k, v in record.items() if k != "digest"}
    text = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def judged_record(outcome: DistroOutcome, entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """run.json's `judged` for `outcome` (written as `entry`), None without artifacts."""
    if outcome.artifacts_dir is None or not Path(outcome.artifacts_dir).is_dir():
        return None
    try:
        evidence = evidence_digest(Path(outcome.artifacts_dir))
    except OSError:
        return None  # an unreadable artifact: the merge will judge this distro again
    j = outcome.judgement
    record: dict[str, Any] = {
        "format": FORMAT,
        "imagefactory": _version(),
        "evidence": evidence,
        "report_present": outcome.report_present,
        "summary": dict(outcome.summary),
        "judgement": {
            "warnings": list(j.warnings),
            "review": list(j.review),
            "disagreements": list(j.disagreements),
            "summary_mismatch": j.summary_mismatch,
            "mismatch_line": j.mismatch_line,
            "unseen_failures": j.unseen_failures,
        },
        "results": [_row(t) for t in outcome.tests],
    }
    # The digest is over the JSON as it will be read back (tuples become lists).
    record["digest"] = _binding(json.loads(json.dumps(entry)), json.loads(json.dumps(record)))
    return record


def trusted_outcome(
    where: str,
    entry: Mapping[str, Any],
    artifacts: Path,
    *,
    baseline_digest: str | None,
    judged_with: str | None,
) -> tuple[DistroOutcome | None, str | None]:
    """The outcome `entry` recorded, when its `judged` record still holds; else (None, why).

    `baseline_digest` is the baseline the run was judged with (run.json's), `judged_with`
    the one this merge judges with.  UsageError when the record is not the right shape.
    """
    raw = entry.get("judged")
    if raw is None:
        return None, None  # an older run.json: judged again, nothing to say
    try:
        parsed = _Entry.model_validate(entry)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"{where}: {entry.get('distro')!s:.64}: {field}: {first['msg']}",
            hint="give run directories written by klab test, klab rc or klab results merge",
        ) from None
    record = parsed.judged
    if record.format != FORMAT or record.imagefactory != _version():
        return None, f"judged by imagefactory {record.imagefactory:.40} (format {record.format})"
    if baseline_digest != judged_with:
        return None, "judged with another baseline"
    if record.digest != _binding(entry, raw):
        return None, "run.json's verdicts do not match their digest (edited or damaged)"
    try:
        evidence = evidence_digest(artifacts)
    except OSError as exc:
        return None, f"cannot read the artifacts: {exc.strerror}"
    if record.evidence != evidence:
        return None, "the artifacts differ from those the run judged"
    tests = [
        TestResult(name=r[0], result=r[1], duration_s=r[2], reran=r[3], identifier=r[4],
                   user=r[5], timestamp=r[6], note=r[7], attempts=tuple(r[8]))
        for r in record.results
    ]  # fmt: skip
    by_key = {
        v.name: TestVerdict(v.name, v.verdict, v.result, tuple(v.attempts), v.reason, v.entry)
        for v in parsed.tests
    }
    if len(by_key) != len(parsed.tests) or {t.key for t in tests} != set(by_key):
        return None, "run.json's verdicts and results name different tests"
    j = record.judgement
    judgement = Judgement(
        verdicts=by_key,
        warnings=list(j.warnings),
        review=list(j.review),
        disagreements=list(j.disagreements),
        summary_mismatch=j.summary_mismatch,
        mismatch_line=j.mismatch_line,
        unseen_failures=j.unseen_failures,
    )
    outcome = DistroOutcome(
        distro=parsed.distro,
        status=parsed.status,
        tests=tests,
        summary=dict(record.summary),
        unexpected=list(parsed.unexpected),
        report_present=record.report_present,
        duration_s=parsed.duration_s,
        golden_build_id=parsed.golden_build_id,
        zfs_version=parsed.zfs_version,
        suite_version=parsed.suite_version,
        artifacts_dir=str(artifacts),
        message=parsed.message,
        verdicts=by_key,
        context=RunContext(**parsed.context.model_dump()),
        baseline_digest=baseline_digest,
        judgement=judgement,
    )
    return outcome, None
