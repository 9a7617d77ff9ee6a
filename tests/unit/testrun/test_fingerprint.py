"""Fingerprints and drift on real run directories and a real SQLite history, no VM.

The runs are made the way `klab test` makes them (tests/fixtures/report_runs.py): real
consoles judged by the stage's judge, real bpftrace text parsed, recorded in a history.  A
second golden build is given 60 % longer test durations in the history (the one
deliberate change, made by the fixture's `scale`), which must show as drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.commands.fingerprint import rc_drift
from imagefactory.errors import UsageError
from imagefactory.testrun import fingerprint
from imagefactory.testrun.fingerprint_drift import compare, parse_rule, previous_of, threshold_for
from tests.fixtures.report_runs import make_run

DEBIAN = {"debian13": "zts-2.3.9-debian13-quick-real.log"}


@pytest.fixture()
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    state = tmp_path / "state"
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(state))
    monkeypatch.setenv("KLAB_STATE_DIR", str(state))
    return tmp_path / "runs", tmp_path / "history.sqlite"


def _run(
    lab: tuple[Path, Path], index: int, build: str, *, accel: str = "tcg", scale: float = 1.0
) -> Path:
    root, history = lab
    return make_run(
        root,
        history,
        index=index,
        distros=DEBIAN,
        build_ids={"debian13": build},
        accel=accel,
        scale=scale,
    )


def test_capture_from_the_golden_s_run(lab: tuple[Path, Path]) -> None:
    run_dir = _run(lab, 0, "b1")
    _, history = lab
    assert fingerprint.run_of_golden(history, "debian13", "b1") == run_dir
    assert fingerprint.run_of_golden(history, "debian13", "b0") is None
    captured = fingerprint.derive(run_dir, "debian13", history=history)
    path = fingerprint.save(captured)
    assert path == fingerprint.fingerprints_dir() / "debian13" / "b1.json"
    assert path.parent.parent.parent == Path(os.environ["IMAGEFACTORY_STATE"])
    doc = json.loads(path.read_text())
    assert doc["schema"] == "klab-fingerprint/1" and doc["build_id"] == "b1"
    assert doc["facts"] == {
        "kernel": "6.12.48+deb13-amd64",
        "zfs_version": "2.3.9",
        "accel": "tcg",
        "module_params": None,
    }
    metrics = doc["metrics"]
    durations = {k: v for k, v in metrics.items() if k.startswith("duration/")}
    assert len(durations) == 95  # the console's 95 PASS lines
    assert metrics["zio/read/p50_s"] > 0 and metrics["txg/sync_p99_s"] >= metrics["txg/sync_p50_s"]
    assert "arc/hit_ratio" not in metrics  # arc.bt did not attach in these runs


def test_a_slower_build_drifts_and_thresholds_are_per_metric(lab: tuple[Path, Path]) -> None:
    _, history = lab
    b1 = fingerprint.derive(_run(lab, 0, "b1"), "debian13", history=history)
    b2 = fingerprint.derive(_run(lab, 1, "b2", scale=1.6), "debian13", history=history)
    drift = compare(b1, b2)
    moved = {m.metric for m in drift.moved}
    assert moved and all(m.startswith("duration/") for m in moved)
    assert all(m.before >= 1.0 or m.after >= 1.0 for m in drift.moved)
    assert all(abs(m.change - 0.6) < 0.01 for m in drift.moved)
    assert not compare(b1, b2, [parse_rule("duration/*=100%")]).moved
    assert threshold_for("zio/read/p99_s", [parse_rule("zio/*=50%")]) == 0.5
    assert threshold_for("txg/sync_p99_s", [parse_rule("zio/*=50%")]) == 0.25


def test_rules() -> None:
    assert parse_rule("zio/*=0.4").ratio == 0.4
    for bad in ("zio/*", "=5%", "zio/*=x", "zio/*=0", "zio/*=nan"):
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_other_accelerators_are_never_compared(lab: tuple[Path, Path]) -> None:
    _, history = lab
    tcg = fingerprint.derive(_run(lab, 0, "b1"), "debian13", history=history)
    kvm = fingerprint.derive(_run(lab, 1, "b2", accel="kvm"), "debian13", history=history)
    assert previous_of([tcg, kvm], kvm) is None
    drift = compare(tcg, kvm)
    assert drift.note is not None and "tcg" in drift.note and not drift.moved
    with pytest.raises(UsageError, match="no fingerprint of debian13 build b9"):
        previous_of([tcg, kvm], kvm, "b9")


def _klab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagefactory", "fingerprint", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_diff_command_exit_statuses(lab: tuple[Path, Path]) -> None:
    _, history = lab
    assert _klab("diff", "debian13").returncode == 2  # nothing captured yet
    for index, build, scale in ((0, "b1", 1.0), (1, "b2", 1.6)):
        fingerprint.save(
            fingerprint.derive(_run(lab, index, build, scale=scale), "debian13", history=history)
        )
    proc = _klab("diff", "debian13")
    assert proc.returncode == 1, proc.stderr
    assert "build `b2` against `b1`" in proc.stdout and "+60 %" in proc.stdout
    proc = _klab("diff", "debian13", "--threshold", "duration/*=70%", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["moved"] == []
    proc = _klab("diff", "debian13", "--against", "nope")
    assert proc.returncode == 2 and "no fingerprint of debian13 build nope" in proc.stderr
    proc = _klab("diff", "debian13", "--threshold", "zio/*")
    assert proc.returncode == 2 and "PATTERN=RATIO" in proc.stderr
    fingerprint.save(
        fingerprint.derive(_run(lab, 2, "b3", accel="kvm"), "debian13", history=history)
    )
    proc = _klab("diff", "debian13")
    assert proc.returncode == 0 and "no earlier fingerprint under kvm" in proc.stdout
    proc = _klab("diff", "debian13", "--against", "b1")
    assert proc.returncode == 2 and "same accelerator" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_rc_puts_the_drift_table_in_summary_and_report(lab: tuple[Path, Path]) -> None:
    _, history = lab
    first = _run(lab, 0, "b1")
    drifts = rc_drift(first, ["debian13"], history=history)
    assert (
        drifts[0].note is not None and "no earlier build fingerprinted under tcg" in drifts[0].note
    )
    gate = _run(lab, 1, "b2", scale=1.6)
    drifts = rc_drift(gate, ["debian13"], history=history)
    assert drifts[0].drifted
    summary = (gate / "summary.md").read_text()
    assert "## Fingerprint drift (informational)" in summary and "+60 %" in summary
    assert json.loads((gate / "drift.json").read_text())["distros"][0]["against"] == "b1"
    report = (gate / "report.html").read_text()
    assert 'id="drift"' in report and "+60 %" in report


def test_capture_command_uses_the_current_golden_s_run(lab: tuple[Path, Path]) -> None:
    """A real files store holds the golden; the history holds a quick run of it, so capture
    takes the fingerprint from that run and boots nothing."""
    from imagefactory.store.base import Provenance
    from imagefactory.store.select import open_store

    root, history = lab
    store_spec = f"file:{root.parent / 'store'}"
    store = open_store(store_spec)
    volume = store.create_build_volume("klab-ztest-debian", "debian13-b1", 1 << 20)
    store.publish(volume, Provenance(distro="debian13", lineage="ztest", build_id="debian13-b1"))
    _run(lab, 0, "debian13-b1")
    args = ("--store", store_spec, "--history", str(history))
    proc = _klab("capture", "debian13", *args)
    assert proc.returncode == 0, proc.stderr
    assert "debian13 build debian13-b1: " in proc.stdout and "(tcg)" in proc.stdout
    assert (fingerprint.fingerprints_dir() / "debian13" / "debian13-b1.json").is_file()
    # An older build without a run cannot be run any more: a usage error, no boot.
    proc = _klab("capture", "debian13", "--build-id", "debian13-b0", *args)
    assert proc.returncode == 2 and "it cannot be run any more" in proc.stderr


def test_module_parameters_come_from_the_first_clone_and_drift_one_by_one(
    lab: tuple[Path, Path],
) -> None:
    """The guest writes `zfs-params.txt` (hooks/testrun/50-klab-test.sh's collection); with
    `--clones` it sits in `clone-<k>/`.  A changed parameter is a fact of the drift, by name."""
    run_dir = _run(lab, 0, "b1")
    clone = run_dir / "debian13" / "clone-1"
    clone.mkdir(parents=True, exist_ok=True)
    clone.joinpath("zfs-params.txt").write_text("zfs_arc_max=0\nzfs_txg_timeout=5\nnoise\n")
    doc = fingerprint.derive(run_dir, "debian13", history=lab[1])
    assert doc["facts"]["module_params"] == {"zfs_arc_max": "0", "zfs_txg_timeout": "5"}
    later = json.loads(json.dumps(doc))
    later["build_id"] = "b2"
    later["facts"]["module_params"]["zfs_txg_timeout"] = "10"
    drift = compare(doc, later)
    assert drift.facts == {"zfs module parameter zfs_txg_timeout": ("5", "10")}
    unknown = json.loads(json.dumps(doc))
    unknown["facts"]["module_params"] = None
    assert compare(unknown, later).facts == {}


@given(st.text(max_size=4000))
@settings(max_examples=200, deadline=None)
def test_module_params_parser_takes_any_text(text: str) -> None:
    params = fingerprint.parse_module_params(text)
    for name, value in params.items():
        assert name and name == name.strip() and "=" not in name and "\n" not in value
