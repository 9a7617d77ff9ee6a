"""`klab baseline suggest`: entries from flake rates, that load as a baseline file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.baseline import load_baseline, parse_baseline_text
from tests.unit.testrun.history_builder import HistoryBuilder, debian_run, t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    with HistoryBuilder.create(path) as b:
        for i in range(20):
            runs = {"debian13": debian_run(i)}
            if i >= 18:  # two runs only: no rate worth suggesting yet
                runs["ubuntu24"] = [t("rsend/timing", "FAIL" if i == 18 else "PASS")]
            b.run(f"run{i:02d}", runs)
    return path


def suggest(db: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["baseline", "suggest", "--db", str(db), *argv]) == 0
    return capsys.readouterr().out


def test_suggestions_load_as_a_baseline(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = suggest(db, capsys, "--no-baseline")

    entries = {e.spec.test: e.spec for e in parse_baseline_text(out, "suggested.yaml")}
    assert set(entries) == {"rsend/timing", "trim/sometimes_skipped", "rsend/retry"}
    timing = entries["rsend/timing"]
    assert (timing.kind, timing.result, timing.distros) == ("flaky", ("KILLED",), ("debian13",))
    assert timing.reason.startswith("F:3/20 on debian13 in the last 20 runs (15%, high)")
    assert "last failed in run run15 (2026-04-22)" in timing.reason
    assert entries["trim/sometimes_skipped"].reason.startswith("F:1/10 ")
    assert entries["rsend/retry"].result == ("FAIL",)
    # Broken (always failing) and barely seen (ubuntu24: 2 runs) tests are not suggested.
    assert "cli_root/broken" not in out and "ubuntu24" not in out
    # Pasted into a file, they load with the loader `klab test` uses.
    pasted = tmp_path / "flaky.yaml"
    pasted.write_text(out)
    assert len(load_baseline([pasted]).entries) == 3
    assert out.startswith("# klab baseline suggest: the last 20 run(s) in ")


def test_thresholds_narrow_the_suggestions(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    often = suggest(db, capsys, "--no-baseline", "--min-rate", "10%")
    assert {e.spec.test for e in parse_baseline_text(often, "x")} == {
        "rsend/timing",
        "trim/sometimes_skipped",
    }
    recent = suggest(db, capsys, "--no-baseline", "--last", "5")
    assert {e.spec.test for e in parse_baseline_text(recent, "x")} == {"rsend/timing"}
    with_ubuntu = suggest(db, capsys, "--no-baseline", "--min-runs", "2", "--distro", "ubuntu24")
    [entry] = parse_baseline_text(with_ubuntu, "x")
    assert (entry.spec.test, entry.spec.distros) == ("rsend/timing", ("ubuntu24",))
    assert entry.spec.reason.startswith("F:1/2 ")


def test_tests_the_baseline_covers_are_left_out(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "ours.yaml"
    known.write_text(
        "- test: rsend/timing\n  result: KILLED\n  kind: flaky\n  reason: slow under TCG\n"
        "  distros: [debian13]\n"
        # Covers FAIL only where the run is KVM: not this history's TCG runs.
        "- test: rsend/retry\n  result: FAIL\n  kind: flaky\n  reason: x\n  accel: kvm\n"
    )

    out = suggest(db, capsys, "--baseline", str(known))

    assert {e.spec.test for e in parse_baseline_text(out, "x")} == {
        "trim/sometimes_skipped",
        "rsend/retry",
    }
    assert "# 1 more already covered by the baseline" in out


def test_nothing_to_suggest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.sqlite"
    with HistoryBuilder.create(path) as b:
        b.run("r1", {"debian13": [t("a/ok")]})

    out = suggest(path, capsys, "--no-baseline")

    assert parse_baseline_text(out, "x") == []
    assert "# nothing to suggest" in out


@pytest.mark.parametrize("argv", [["--min-rate", "5"], ["--last", "0"], ["--min-runs", "x"]])
def test_bad_options_exit_2(db: Path, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["baseline", "suggest", "--db", str(db), *argv])
    assert exit_info.value.code == 2
