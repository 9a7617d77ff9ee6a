"""The bpftrace parser on crafted text: print format corners, timestamps, attach failures,
and the host-side writing of bpftrace/<name>.json from a real artifacts directory."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from imagefactory.testrun.bpftrace import parse_output
from imagefactory.testrun.bpftrace_files import (
    load_trace,
    run_started,
    with_bpf_scripts,
    write_trace_json,
)
from imagefactory.testrun.bpftrace_option import bpf_option, scripts_for
from imagefactory.vm.hookplan import Hook, HookPlan
from tests.fixtures import bpftrace_emulate

FIXTURES = Path(__file__).parents[2] / "fixtures" / "bpftrace"


def test_bucket_forms_and_suffixes_in_base_units() -> None:
    text = (
        "Attaching 3 probes...\n"
        "@latency_us[read]: \n"
        "(..., 0)               1 |@@@@                                                |\n"
        "[0]                    2 |@@@@@@@@                                            |\n"
        "[1]                    0 |                                                    |\n"
        "[2, 4)                 3 |@@@@@@@@@@@@                                        |\n"
        "[1K, 2K)               4 |@@@@@@@@@@@@@@@@                                    |\n"
        "[1M, 2M)               5 |@@@@@@@@@@@@@@@@@@@@                                |\n"
        "\n"
        "@done: 15\n"
        "@multi[tank, 7]: 3\n"
    )
    doc = parse_output(text, "zio")
    buckets = doc["totals"]["latency_us"]["series"]["read"]
    assert buckets == [
        {"lower": None, "upper": 0, "count": 1},
        {"lower": 0, "upper": 1e-6, "count": 2},
        {"lower": 2e-6, "upper": 4e-6, "count": 3},
        {"lower": 1024e-6, "upper": 2048e-6, "count": 4},
        {"lower": 1048576e-6, "upper": 2097152e-6, "count": 5},
    ]
    assert doc["totals"]["done"] == {"kind": "scalar", "unit": "count", "values": {"": 15}}
    assert doc["totals"]["multi"]["values"] == {"tank, 7": 3}
    assert doc["totals"]["multi"]["unit"] == "1"
    assert doc["summary"]["ops"]["read"]["count"] == 15


def test_reports_are_dated_from_the_run_start_across_midnight() -> None:
    text = "Attaching 1 probe...\n" + "".join(
        f"\n--- {clock} ---\n@syncs[tank]: 1\n" for clock in ("23:59:55", "00:00:00", "00:00:05")
    )
    started = datetime(2026, 12, 2, 23, 59, 50, tzinfo=UTC)
    doc = parse_output(text, "txg", started=started)
    assert [i["at"] for i in doc["intervals"]] == [
        "2026-12-02T23:59:55Z",
        "2026-12-03T00:00:00Z",
        "2026-12-03T00:00:05Z",
    ]
    assert [i["elapsed_s"] for i in doc["intervals"]] == [0, 5, 10]
    assert doc["ended"] is False  # no END report: stopped hard


def test_a_guest_clock_slightly_behind_the_start_stays_on_that_day() -> None:
    text = "Attaching 1 probe...\n\n--- 11:59:58 ---\n@syncs[tank]: 1\n"
    doc = parse_output(text, "txg", started=datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC))
    assert doc["intervals"][0]["at"] == "2026-12-02T11:59:58Z"


def test_without_a_start_reports_have_no_date() -> None:
    doc = parse_output("Attaching 1 probe...\n--- 10:00:00 ---\n@syncs[t]: 1\n", "txg")
    assert doc["intervals"][0]["at"] is None and doc["intervals"][0]["clock"] == "10:00:00"


def test_empty_output_is_not_attached() -> None:
    doc = parse_output("\n\n", "arc")
    assert doc["attached"] is False and doc["reason"].startswith("no output")


def test_output_without_attaching_or_reports_is_not_attached() -> None:
    doc = parse_output("zio.bt:3:1-5: ERROR: syntax error, unexpected identifier\n", "zio")
    assert doc["attached"] is False
    assert "syntax error" in doc["reason"]


def test_the_memlock_complaint_alone_does_not_count_as_an_error() -> None:
    text = (FIXTURES / "host-emulated" / "zio.txt").read_text()
    assert "RLIMIT_MEMLOCK" in text
    doc = parse_output(text, "zio")
    assert doc["attached"] is True and doc["messages"] == []


def test_malformed_map_lines_are_counted_not_fatal() -> None:
    text = "Attaching 1 probe...\n@: 3\n@9bad[x]: 1\n[4, 8)   2 |@@|\n@ok[x]: 1\n"
    doc = parse_output(text, "spl")
    assert doc["skipped_lines"] == 3
    assert doc["totals"]["cache" if False else "ok"]["values"] == {"x": 1}


def test_options() -> None:
    assert bpf_option("none") == ()
    assert bpf_option("all") == ("zio", "txg", "arc", "spl")
    assert bpf_option("spl,zio") == ("zio", "spl")  # the canonical order
    with pytest.raises(argparse.ArgumentTypeError, match="unknown bpftrace script nfs"):
        bpf_option("zio,nfs")
    assert scripts_for(None) == ("zio", "txg", "arc", "spl")  # under TCG too: +7 %, measured
    assert scripts_for(()) == ()


def test_the_hook_plan_carries_the_choice() -> None:
    plan = HookPlan((Hook("50-klab-test.sh", b"#!/bin/sh\n", 10.0, {"KLAB_TEST_MODE": "zts"}),))
    env = with_bpf_scripts(plan, ("zio", "arc")).hooks[0].env
    assert env == {"KLAB_TEST_MODE": "zts", "KLAB_BPF_SCRIPTS": "zio arc"}
    assert with_bpf_scripts(plan, ()).hooks[0].env["KLAB_BPF_SCRIPTS"] == ""


def _artifacts(tmp_path: Path) -> Path:
    artifacts = tmp_path / "debian13"
    (artifacts / "bpftrace").mkdir(parents=True)
    (artifacts / "system.txt").write_text("date: 2026-12-02T21:27:00Z\nkernel: Linux h 6.12 x\n")
    for name in ("zio", "txg"):
        shutil.copy(FIXTURES / "host-emulated" / f"{name}.txt", artifacts / "bpftrace")
    shutil.copy(FIXTURES / "host-noattach" / "arc.txt", artifacts / "bpftrace")
    (artifacts / "runner.log").write_text(
        "21:27:01 bpftrace script /usr/local/share/zfs-bt/spl.bt is missing\n"
    )
    return artifacts


def test_every_requested_script_gets_a_json_file(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path)
    written = write_trace_json(artifacts, ("zio", "txg", "arc", "spl"))
    assert sorted(p.name for p in written) == ["arc.json", "spl.json", "txg.json", "zio.json"]
    zio = load_trace(artifacts, "zio")
    assert zio is not None and zio["attached"] is True
    assert zio["intervals"][0]["at"].startswith("2026-12-02T21:")
    arc = load_trace(artifacts, "arc")
    assert arc is not None and arc["attached"] is False and "attach" in arc["reason"]
    spl = json.loads((artifacts / "bpftrace" / "spl.json").read_text())
    assert spl["attached"] is False and "spl.bt is missing" in spl["reason"]
    assert run_started(artifacts) == datetime(2026, 12, 2, 21, 27, tzinfo=UTC)


def test_traces_nobody_asked_for_are_parsed_too(tmp_path: Path) -> None:
    artifacts = _artifacts(tmp_path)
    written = write_trace_json(artifacts, None)
    assert sorted(p.name for p in written) == ["arc.json", "txg.json", "zio.json"]


def test_no_request_and_no_traces_writes_nothing(tmp_path: Path) -> None:
    assert write_trace_json(tmp_path, ()) == []
    assert not (tmp_path / "bpftrace").exists()


def test_a_requested_script_without_output_says_so(tmp_path: Path) -> None:
    write_trace_json(tmp_path, ("txg",))
    doc = load_trace(tmp_path, "txg")
    assert doc is not None and doc["reason"] == "no output: the guest brought back no txg.txt"


@pytest.mark.skipif(os.geteuid() != 0, reason="bpftrace needs root")
def test_live_bpftrace_output_parses(tmp_path: Path) -> None:
    """The emulated txg.bt under this host's bpftrace, stopped with SIGINT like the guest."""
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (apt-get install bpftrace)")
    probe = subprocess.run(
        ["bpftrace", "-e", "BEGIN { exit(); }"], capture_output=True, text=True, check=False
    )
    if "Attaching" not in probe.stdout:
        pytest.skip(f"bpftrace cannot attach on this host: {probe.stderr.strip()[-200:]}")
    text = bpftrace_emulate.capture("txg", 5.0)
    doc = parse_output(text, "txg")
    assert doc["attached"] is True and doc["ended"] is True, text[-2000:]
    assert doc["intervals"] and doc["summary"]["pools"]["testpool"]["syncs"] > 0
