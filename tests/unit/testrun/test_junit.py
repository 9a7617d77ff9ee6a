"""JUnit XML: well-formed, one testsuite per distro, and gating like the exit status."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imagefactory.testrun.absent import absent_results
from imagefactory.testrun.baseline import baselines_dir, load_baseline
from imagefactory.testrun.junit import build_junit, junit_bytes, write_junit
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import TestResult, parse_file, parse_log

LOGS = Path(__file__).parent / "logs"


def outcomes() -> list[DistroOutcome]:
    ubuntu = DistroOutcome.from_parsed(
        "ubuntu24",
        parse_file(LOGS / "zts-2.2-sanity.log"),
        absent=absent_results(["raidz/raidz_expand_001_pos"], "2.2.2"),
        zfs_version="2.2.2-0ubuntu9",
        suite_version="2.2.2",
        golden_build_id="b-42",
        baseline=load_baseline([baselines_dir()]),
    )
    fedora = DistroOutcome.from_parsed("fedora44", parse_file(LOGS / "zts-2.4-timestamps.log"))
    rocky = DistroOutcome.failed_infrastructure("rocky9", "no ztest golden", not_built=True)
    return [ubuntu, fedora, rocky]


def cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {f"{c.get('classname')}::{c.get('name')}": c for c in suite.iter("testcase")}


def test_the_xml_parses_back_with_a_suite_per_distro(tmp_path: Path) -> None:
    path = write_junit(tmp_path / "junit.xml", outcomes())

    root = ET.parse(path).getroot()

    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["ubuntu24", "fedora44", "rocky9"]
    for suite in suites:
        found = list(suite.iter("testcase"))
        assert int(suite.get("tests", "-1")) == len(found)
        assert int(suite.get("failures", "-1")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("skipped", "-1")) == len(suite.findall("testcase/skipped"))
        assert int(suite.get("errors", "-1")) == len(suite.findall("testcase/error"))
    assert int(root.get("tests", "0")) == sum(int(s.get("tests", "0")) for s in suites)
    assert not list(tmp_path.glob("*.part"))


def test_results_map_to_failure_skipped_and_error() -> None:
    root = ET.fromstring(junit_bytes(outcomes()))
    ubuntu, fedora, rocky = root.findall("testsuite")

    u = cases(ubuntu)
    create = u["ubuntu24.cli_root.zpool_create::zpool_create_002_pos"]
    assert create.find("failure") is not None
    assert create.get("time") == "48.000"
    # The baseline expects this FAIL: not a failure in CI, but visible with its reason.
    formd = u["ubuntu24.casenorm::mixed_formd_lookup"].find("skipped")
    assert formd is not None
    assert formd.get("message") == "expected FAIL: https://github.com/openzfs/zfs/issues/7633"
    absent = u["ubuntu24.raidz::raidz_expand_001_pos"].find("skipped")
    assert absent is not None and absent.get("message") == "absent in zfs-tests 2.2.2"
    assert u["ubuntu24.atime::setup (Linux)"].find("*") is None  # a pass has no child
    props = {p.get("name"): p.get("value") for p in ubuntu.iter("property")}
    assert props["suite_version"] == "2.2.2" and props["golden_build_id"] == "b-42"

    f = cases(fedora)
    killed = f["fedora44.fault::auto_replace_001_pos (Linux)"].find("failure")
    assert killed is not None and killed.get("type") == "KILLED"
    assert fedora.get("failures") == "2"

    [error] = rocky.findall("testcase/error")
    assert "no ztest golden" in (error.get("message") or "")


def test_flaky_stale_and_rerun_failures_in_surefires_rerun_format(tmp_path: Path) -> None:
    # The real rerun console: l2arc_l2miss_pos failed, then passed when rerun.
    flaky = DistroOutcome.from_parsed("debian13", parse_file(LOGS / "zts-rerun-maybes.log"))
    # The same console with its rerun failing again, and a stale `known` entry.
    text = (LOGS / "zts-rerun-maybes.log").read_text()
    text = text.replace("[00:29] [PASS]", "[00:29] [FAIL]").replace(
        "PASS\t   3\n\nRunning Time:\t00:00:30", "PASS\t   2\nFAIL\t   1\n\nRunning Time:\t00:00:30"
    )
    baseline = tmp_path / "stale.yaml"
    baseline.write_text(
        "- {test: l2arc/persist_l2arc_001_pos, result: FAIL, kind: known, reason: stale}\n"
    )
    failing = DistroOutcome.from_parsed(
        "ubuntu24", parse_log(text), baseline=load_baseline([baseline])
    )

    root = ET.fromstring(junit_bytes([flaky, failing]))
    flaky_suite, failing_suite = root.findall("testsuite")

    case = cases(flaky_suite)["debian13.l2arc::l2arc_l2miss_pos"]
    assert case.find("failure") is None and case.find("skipped") is None  # a pass...
    [attempt] = case.findall("flakyFailure")  # ...with its failed attempt
    assert attempt.get("type") == "FAIL"
    assert attempt.findtext("stackTrace") == "l2arc/l2arc_l2miss_pos: attempt 1 of 2: FAIL"
    assert flaky_suite.get("failures") == "0"

    again = cases(failing_suite)["ubuntu24.l2arc::l2arc_l2miss_pos"]
    assert again.find("failure") is not None
    [rerun] = again.findall("rerunFailure")
    assert rerun.findtext("stackTrace") == "l2arc/l2arc_l2miss_pos: attempt 2 of 2: FAIL"
    stale = cases(failing_suite)["ubuntu24.l2arc::persist_l2arc_001_pos"]
    assert stale.find("failure") is None
    assert stale.findtext("system-out") == f"unexpected pass: expected FAIL: stale ({baseline}:1)"
    assert failing_suite.get("failures") == "1"


_word = st.text(min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(
        st.tuples(
            _word, _word, st.sampled_from(["PASS", "FAIL", "SKIP", "KILLED"]), st.none() | _word
        ),
        min_size=0,
        max_size=6,
    ),
    message=st.none() | st.text(max_size=20),
)
def test_the_writer_writes_what_elementtree_would(
    names: list[tuple[str, str, str, str | None]], message: str | None
) -> None:
    """The direct serializer against ElementTree's own (ET.indent + tostring) on hostile
    names, notes and messages (markup, quotes, tabs, newlines, control characters)."""
    tests = [
        TestResult(f"{group}/{base}", result, 1.5, note=note) for group, base, result, note in names
    ]
    passed = DistroOutcome.from_tests('d<1>&"', tests, golden_build_id=message)
    broken = DistroOutcome.failed_infrastructure("e\t2", message or "x")
    for outcomes in ([passed, broken], [passed], []):
        root = build_junit(outcomes, name=f"klab {message}")
        ET.indent(root)
        expected = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
        assert junit_bytes(outcomes, name=f"klab {message}") == expected
