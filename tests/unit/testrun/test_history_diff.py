"""Run-to-run diffs and timing trends: `History.diff`, `klab history --diff/--diff-last`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.testrun.baseline import load_baseline
from imagefactory.testrun.history import History, TestChange, TimingThresholds, timing_markdown
from imagefactory.testrun.history.values import parse_run_ref
from tests.unit.testrun.history_builder import HistoryBuilder, t


@pytest.fixture
def db(tmp_path: Path) -> Path:
    known = tmp_path / "known.yaml"
    known.write_text(
        "- test: zpool/known\n  result: FAIL\n  kind: known\n  reason: https://example/issue/1\n"
    )
    path = tmp_path / "history.sqlite"
    with HistoryBuilder.create(path, baseline=load_baseline([known])) as b:
        b.run(
            "before",
            {
                "debian13": [
                    t("a/breaks"),
                    t("a/fixed", "FAIL"),
                    t("a/flakes"),
                    t("a/goes"),
                    t("a/steady"),
                    t("a/fail-to-kill", "FAIL"),
                    t("zpool/known", "FAIL"),
                ],
                "ubuntu24": [t("a/steady")],
            },
        )
        b.baseline = None  # the entry was dropped: the same FAIL is no longer expected
        b.run(
            "after",
            {
                "debian13": [
                    t("a/breaks", "FAIL"),
                    t("a/fixed"),
                    t("a/flakes", "KILLED", "PASS"),
                    t("a/steady"),
                    t("a/fail-to-kill", "KILLED"),
                    t("a/arrives"),
                    t("zpool/known", "FAIL"),
                ],
                "fedora44": [t("a/steady")],
            },
        )
    return path


def test_a_diff_sorts_every_change_by_kind(db: Path) -> None:
    with History.open(db, readonly=True) as history:
        before = history.resolve_run(parse_run_ref("before"))
        after = history.resolve_run(parse_run_ref("last"))
        diff = history.diff(before, after)

    assert (diff.previous, diff.current) == ("before", "after")
    kinds = {(c.distro, c.test): c.kind for c in diff.changes}
    assert kinds == {
        ("debian13", "a/breaks"): "new-failure",
        ("debian13", "a/flakes"): "newly-flaky",
        ("debian13", "a/fixed"): "fixed",
        ("debian13", "a/fail-to-kill"): "changed",
        ("debian13", "zpool/known"): "new-failure",  # its baseline entry was dropped
        ("debian13", "a/arrives"): "new",
        ("debian13", "a/goes"): "gone",
        ("fedora44", "a/steady"): "new",
        ("ubuntu24", "a/steady"): "gone",
    }
    known = next(c for c in diff.changes if c.test == "zpool/known")
    assert (known.before_verdict, known.after_verdict) == ("expected", "unexpected-failure")
    assert diff.status_changes == [("fedora44", None, "passed"), ("ubuntu24", "passed", None)]
    grouped = diff.by_distro()
    assert [c.kind for c in grouped["debian13"]] == [
        "new-failure",
        "new-failure",
        "newly-flaky",
        "fixed",
        "changed",
        "new",
        "gone",
    ]


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (("PASS", "pass"), ("KILLED", "expected"), "changed"),  # a known flake fired
        (("FAIL", "expected"), ("FAIL", "unexpected-failure"), "new-failure"),
        (("PASS", "pass"), ("CRASHED", "crashed"), "new-failure"),
        (("FAIL", "unexpected-failure"), ("PASS", "flaky"), "newly-flaky"),
        (("KILLED", "expected"), ("PASS", "unexpected-pass"), "fixed"),
        (("PASS", "pass"), ("SKIP", "skip"), "changed"),
    ],
)
def test_change_kinds(before: tuple[str, str], after: tuple[str, str], kind: str) -> None:
    change = TestChange("d", "t", before[0], after[0], before[1], after[1])
    assert change.kind == kind


def test_diff_of_one_distro(db: Path) -> None:
    with History.open(db, readonly=True) as history:
        runs = [history.resolve_run(parse_run_ref(r)) for r in ("last~1", "last")]
        diff = history.diff(*runs, distro="ubuntu24")

    assert [(c.distro, c.test, c.kind) for c in diff.changes] == [("ubuntu24", "a/steady", "gone")]
    assert diff.status_changes == [("ubuntu24", "passed", None)]


def test_diff_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--diff", "bef", "aft", "--json"]) == 0

    data = json.loads(capsys.readouterr().out)
    assert (data["previous"], data["current"]) == ("before", "after")
    breaks = next(c for c in data["changes"] if c["test"] == "a/breaks")
    assert breaks == {
        "distro": "debian13",
        "test": "a/breaks",
        "before": "PASS",
        "after": "FAIL",
        "before_verdict": "pass",
        "after_verdict": "unexpected-failure",
        "kind": "new-failure",
    }
    assert data["timing"]["thresholds"]["ratio"] == 0.25
    assert data["timing"]["slower"] == []


def test_diff_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--db", str(db), "--diff-last", "--distro", "debian13"]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "selection suite=quick: before -> after"
    table = [
        line.split()[:3] for line in out if line.startswith(("new", "fixed", "changed", "gone"))
    ]
    assert table[:4] == [
        ["new-failure", "debian13", "a/breaks"],
        ["new-failure", "debian13", "zpool/known"],
        ["newly-flaky", "debian13", "a/flakes"],
        ["fixed", "debian13", "a/fixed"],
    ]
    assert out[-1] == "timing: no test had 3 earlier passing runs to compare with"


# -- timing ----------------------------------------------------------------------------------


def timed_history(path: Path) -> Path:
    """Ten earlier runs of debian13 under TCG, then the run under test ("now")."""
    with HistoryBuilder.create(path) as b:
        for i in range(10):
            jitter = i % 3 - 1  # 59, 60, 61 s: a median of 60
            b.run(
                f"past{i}",
                {
                    "debian13": [
                        t("slow/big", s=60 + jitter),
                        t("slow/small", s=3),
                        t("slow/edge", s=60 + jitter),
                        t("slow/flaky-pass", s=10),
                        t("slow/young", s=10) if i >= 8 else t("other/x", s=1),
                    ]
                },
            )
            # A KVM run and a lean-lineage run of the same tests never set the median.
            b.run(f"kvm{i}", {"debian13": [t("slow/big", s=5)]}, accel="kvm")
            b.run(f"lean{i}", {"debian13": [t("slow/big", s=5)]}, lineage="lean")
        b.run(
            "now",
            {
                "debian13": [
                    t("slow/big", s=80),  # +33 %, +20 s: flagged
                    t("slow/small", s=7),  # +133 % but +4 s: noise
                    t("slow/edge", s=75),  # +25 % exactly: not more than 25 %
                    t("slow/flaky-pass", "FAIL", "PASS", s=99),  # not a clean pass
                    t("slow/young", s=60),  # 2 earlier passes: not compared
                ]
            },
        )
    return path


def test_a_test_slower_than_its_recent_median_is_flagged(tmp_path: Path) -> None:
    path = timed_history(tmp_path / "h.sqlite")

    with History.open(path, readonly=True) as history:
        rises, compared = history.timing("now")
        strict, _ = history.timing("now", TimingThresholds(ratio=0.1, seconds=2.0))

    assert compared == 3  # big, small, edge
    assert [(r.distro, r.test, r.duration_s, r.median_s, r.samples) for r in rises] == [
        ("debian13", "slow/big", 80.0, 60.0, 10)
    ]
    assert rises[0].rise == pytest.approx(1 / 3)
    assert [r.test for r in strict] == ["slow/big", "slow/edge", "slow/small"]


def test_the_median_is_over_the_last_ten_passes_only(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with HistoryBuilder.create(path) as b:
        for i in range(5):  # long ago the test took 200 s
            b.run(f"ancient{i}", {"debian13": [t("x/y", s=200)]})
        for i in range(10):
            b.run(f"recent{i}", {"debian13": [t("x/y", s=20)]})
        b.run("now", {"debian13": [t("x/y", s=40)]})

    with History.open(path, readonly=True) as history:
        [rise], compared = history.timing("now")

    assert (compared, rise.median_s, rise.samples) == (1, 20.0, 10)


def test_timing_options_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = timed_history(tmp_path / "h.sqlite")

    assert main(["history", "--db", str(path), "--diff-last", "--distro", "debian13"]) == 0
    out = capsys.readouterr().out
    assert "timing: 1 of 3 tests compared are more than 25 % and 5 s slower" in out
    [row] = [line.split() for line in out.splitlines() if line.startswith("debian13  slow/")]
    assert row == ["debian13", "slow/big", "1m20s", "1m00s", "+33%", "10"]

    argv = ["history", "--db", str(path), "--diff-last", "--slower", "10%", "--slower-by", "2s"]
    assert main([*argv, "--json"]) == 0
    timing = json.loads(capsys.readouterr().out)["timing"]
    assert [s["test"] for s in timing["slower"]] == ["slow/big", "slow/edge", "slow/small"]
    assert timing["thresholds"] == {"ratio": 0.1, "seconds": 2.0, "window": 10, "min_samples": 3}


def test_the_timing_section_of_summary_md(tmp_path: Path) -> None:
    path = timed_history(tmp_path / "h.sqlite")
    with History.open(path, readonly=True) as history:
        rises, compared = history.timing("now")

    lines = timing_markdown(rises, compared)

    assert lines[0] == "## Timing"
    assert lines[2].startswith("1 of 3 tests compared are more than 25 % and 5 s slower")
    assert lines[-1] == "| debian13 | `slow/big` | 1m20s | 1m00s | +33 % | 10 |"
    assert timing_markdown([], 3)[2].startswith("No test got slower: 3 compared")
    assert "No test had 3 earlier passing runs" in timing_markdown([], 0)[2]


def test_the_stage_s_timing_section_never_raises(tmp_path: Path) -> None:
    path = timed_history(tmp_path / "h.sqlite")
    with History.open(path) as history:
        found = history.timing_section("now")
        missing = history.timing_section("nosuch")

    assert found[0] == "## Timing" and found[-1].startswith("| debian13 | `slow/big` |")
    assert missing[0] == "## Timing"
    assert missing[2].startswith("Not available: no run nosuch in the test history")


def test_failed_runs_are_skipped_to_find_ten_passes(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    with HistoryBuilder.create(path) as b:
        for i in range(12):  # 30 s passes; then 4 recent failures, and one flaky pass
            b.run(f"old{i}", {"debian13": [t("x/y", s=30 + i % 2), t("x/z", s=5)]})
        for i in range(4):
            b.run(f"bad{i}", {"debian13": [t("x/y", "FAIL", s=1), t("x/z", s=5)]})
        b.run("flaky", {"debian13": [t("x/y", "FAIL", "PASS", s=300), t("x/z", s=5)]})
        b.run("now", {"debian13": [t("x/y", s=50), t("x/z", s=5)]})

    with History.open(path, readonly=True) as history:
        [rise], compared = history.timing("now")

    assert compared == 2
    assert (rise.test, rise.samples, rise.median_s) == ("x/y", 10, 30.5)
