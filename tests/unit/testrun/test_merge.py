"""`klab results merge` on real run directories: two shards of a recorded quick run.

The shards are cut from the committed Debian 13 console and written by the stage's own
judge and writers (tests/unit/testrun/shard_runs.py).  Merged, they must say what the
unsharded run says (same tests, results, counts, exit status), once in the history however
often they are merged; a missing shard makes the merged run incomplete (exit 3); shards of
different snapshots or selections are refused unless forced.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagefactory.errors import UsageError
from imagefactory.testrun.durations import Durations
from imagefactory.testrun.merge import merge_runs
from imagefactory.testrun.outcome import DistroStatus
from imagefactory.testrun.shard import Shard, ShardSpec
from tests.unit.testrun.shard_runs import DISTRO, RealRun, shard_keys, write_run, write_shards

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def real() -> RealRun:
    return RealRun.load()


def merge(paths: list[Path], out: Path, history: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    return merge_runs(
        paths,
        out,
        runs_root=out.parent,
        baseline=None,
        history=history,
        **kwargs,  # type: ignore[arg-type]
    )


def history_rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
        tests = conn.execute("SELECT count(*) FROM test_results").fetchone()[0]
    return runs, tests


def test_two_shards_merge_into_what_one_run_says(real: RealRun, tmp_path: Path) -> None:
    everything = {t.key for t in real.parsed.tests}
    whole_status = write_run(real, tmp_path / "whole", "20261122T064300Z-whole", everything)
    shards = write_shards(real, tmp_path, 2)
    parts = [
        set(json.loads((s / "run.json").read_text())["distros"][0]["verdicts"]) for s in shards
    ]
    assert parts  # the shards were written with their verdict counts

    merged = merge(shards, tmp_path / "merged", tmp_path / "h.sqlite")

    whole = json.loads((tmp_path / "whole" / "run.json").read_text())["distros"][0]
    out = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert merged.exit_status == whole_status == 1  # one FAIL and one KILLED, unexpected
    (outcome,) = merged.outcomes
    assert outcome.status is DistroStatus.FAILED
    assert sorted(t.key for t in outcome.tests) == sorted(everything)
    assert out["distros"][0]["counts"] == whole["counts"]
    assert out["distros"][0]["verdicts"] == whole["verdicts"]
    assert sorted(out["distros"][0]["unexpected"]) == sorted(whole["unexpected"])
    assert out["complete"] is True and out["missing_shards"] == {}
    assert out["shard"]["count"] == 2 and len(out["shard"]["pieces"][DISTRO]) == 2
    cases = ET.parse(tmp_path / "merged" / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(everything)
    assert "FAIL" in (tmp_path / "merged" / "matrix.txt").read_text() or outcome.unexpected
    assert (tmp_path / "merged" / DISTRO / "shard-2-of-2" / "test.log").is_file()
    assert history_rows(tmp_path / "h.sqlite") == (1, len(everything))


def test_merging_again_adds_nothing(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 3)
    first = merge(shards, tmp_path / "merged", tmp_path / "h.sqlite")
    files = {p: p.read_bytes() for p in (tmp_path / "merged").glob("*.*")}
    rows = history_rows(tmp_path / "h.sqlite")

    again = merge(list(reversed(shards)), tmp_path / "merged", tmp_path / "h.sqlite")
    assert again.run_id == first.run_id
    assert history_rows(tmp_path / "h.sqlite") == rows
    assert {p: p.read_bytes() for p in (tmp_path / "merged").glob("*.*")} == files

    # The merged run with one of its own shards: the shard is already inside it.
    nested = merge([tmp_path / "merged", shards[0]], tmp_path / "merged2", tmp_path / "h.sqlite")
    assert nested.skipped and "already included" in nested.skipped[0]
    assert sorted(t.key for t in nested.outcomes[0].tests) == sorted(
        t.key for t in first.outcomes[0].tests
    )


def test_a_missing_shard_makes_the_run_incomplete(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 3)
    merged = merge([shards[0], shards[2]], tmp_path / "merged", tmp_path / "h.sqlite")
    (outcome,) = merged.outcomes
    assert merged.exit_status == 3
    assert outcome.status is DistroStatus.INFRA_ERROR
    assert outcome.message is not None and "shard(s) 2/3 missing" in outcome.message
    assert merged.missing == {DISTRO: [2]}
    data = json.loads((tmp_path / "merged" / "run.json").read_text())
    assert data["complete"] is False and data["missing_shards"] == {DISTRO: [2]}


def test_shards_of_different_snapshots_are_refused_unless_forced(
    real: RealRun, tmp_path: Path
) -> None:
    one = write_shards(real, tmp_path / "a", 2)
    other = Durations({k: v + 1.0 for k, v in real.durations.tests.items()})
    split = real.split(2, other)
    shard = Shard(ShardSpec(2, 2), other, {DISTRO: split})
    write_run(real, tmp_path / "b2", "20261122T064399Z-b2", shard_keys(real, split, 2), shard=shard)

    with pytest.raises(UsageError, match="different durations snapshots"):
        merge([one[0], tmp_path / "b2"], tmp_path / "merged", tmp_path / "h.sqlite")
    forced = merge(
        [one[0], tmp_path / "b2"], tmp_path / "merged", tmp_path / "h.sqlite", force=True
    )
    assert any("--force" in n for n in forced.notes)


def test_a_shard_given_twice_or_a_foreign_directory(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 2)
    twice = merge([shards[0], shards[0], shards[1]], tmp_path / "m", tmp_path / "h.sqlite")
    assert twice.exit_status == 1 and twice.skipped
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "run.json").write_text('{"run_id": "x", "distros": 3}')
    with pytest.raises(UsageError, match=r"junk/run.json: .*selection") as caught:
        merge([tmp_path / "junk"], tmp_path / "m2", tmp_path / "h.sqlite")
    assert "\n" not in str(caught.value)


def test_the_command_line_exit_statuses(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 2)
    env_args = ["--no-baseline", "--history", str(tmp_path / "h.sqlite")]

    def klab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "imagefactory", "results", "merge", *args, *env_args],
            capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
        )  # fmt: skip

    done = klab(*map(str, shards), "--out", str(tmp_path / "m"))
    assert done.returncode == 1, done.stderr
    assert "run 20261122T064301Z-m" in done.stdout
    missing = klab(str(shards[0]), "--out", str(tmp_path / "m1"))
    assert missing.returncode == 3
    assert "incomplete: debian13 is missing shard(s) 2" in missing.stdout
    bad = klab(str(tmp_path / "nope"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# --- run.json's judged record: trusted when it holds, judged again (with a note) when not --


def _entry(shard: Path) -> tuple[dict[str, object], dict[str, object]]:
    data = json.loads((shard / "run.json").read_text())
    return data, data["distros"][0]


def _save(shard: Path, data: dict[str, object]) -> None:
    (shard / "run.json").write_text(json.dumps(data))


def test_the_judged_record_gives_what_judging_again_gives(real: RealRun, tmp_path: Path) -> None:
    """Trusted and judged anew, the merged files are the same bytes."""
    shards = write_shards(real, tmp_path / "a", 2)
    trusted = merge(shards, tmp_path / "merged", tmp_path / "h.sqlite")
    assert trusted.notes == []
    files = {p.name: p.read_bytes() for p in (tmp_path / "merged").glob("*.*")}
    rows = history_rows(tmp_path / "h.sqlite")
    for shard in shards:  # an older run.json: no record, every piece judged again
        data, entry = _entry(shard)
        del entry["judged"]
        _save(shard, data)
    again = merge(shards, tmp_path / "merged", tmp_path / "h.sqlite")
    assert again.notes == []
    assert {p.name: p.read_bytes() for p in (tmp_path / "merged").glob("*.*")} == files
    assert history_rows(tmp_path / "h.sqlite") == rows


def test_a_valid_record_is_used_as_recorded(real: RealRun, tmp_path: Path) -> None:
    """The recorded message comes through (judging again would write its own): the record,
    re-bound with its own digest function, is what the merge used."""
    from imagefactory.testrun.judged_record import _binding

    shards = write_shards(real, tmp_path, 2)
    data, entry = _entry(shards[0])
    entry["message"] = "recorded by the shard's own stage"
    record = entry["judged"]
    assert isinstance(record, dict)
    record["digest"] = _binding(entry, record)
    _save(shards[0], data)
    merged = merge(shards, tmp_path / "merged", tmp_path / "h.sqlite")
    assert merged.notes == []
    assert "recorded by the shard's own stage" in (merged.outcomes[0].message or "")


def test_an_edited_verdict_is_judged_again_never_trusted(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 2)
    whole = merge(shards, tmp_path / "m0", tmp_path / "h0.sqlite")
    (failing,) = [s for s in shards if _entry(s)[1]["status"] == "failed"][:1]
    data, entry = _entry(failing)
    tests = entry["tests"]
    assert isinstance(tests, list)
    for test in tests:  # made green by hand, digest left as it was
        test["verdict"], test["result"], test["attempts"] = "pass", "PASS", ["PASS"]
    entry["status"], entry["unexpected"] = "passed", []
    _save(failing, data)

    merged = merge(shards, tmp_path / "m", tmp_path / "h.sqlite")
    assert any("judged again" in n and "digest" in n for n in merged.notes)
    (outcome,) = merged.outcomes
    assert outcome.status is DistroStatus.FAILED
    assert sorted(outcome.unexpected) == sorted(whole.outcomes[0].unexpected)
    assert merged.exit_status == 1


def test_changed_artifacts_are_judged_again(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 2)
    log = shards[1] / DISTRO / "test.log"
    log.write_text(log.read_text() + "\n")
    merged = merge(shards, tmp_path / "m", tmp_path / "h.sqlite")
    assert any("artifacts differ" in n for n in merged.notes)
    assert "artifacts differ" in json.dumps(json.loads((tmp_path / "m" / "run.json").read_text()))


def test_a_malformed_record_is_a_one_line_usage_error(real: RealRun, tmp_path: Path) -> None:
    shards = write_shards(real, tmp_path, 2)
    data, entry = _entry(shards[0])
    record = entry["judged"]
    assert isinstance(record, dict)
    record["results"] = [["x", "PASS", "not a number", False, None, None, None, None, []]]
    _save(shards[0], data)
    with pytest.raises(UsageError, match=r"run.json: debian13: judged.results.0.2") as caught:
        merge(shards, tmp_path / "m", tmp_path / "h.sqlite")
    assert "\n" not in str(caught.value)
