"""Every bpftrace capture under tests/fixtures/bpftrace/ parses to what its text says.

The oracle is the text itself, read with plain string operations independent of the
parser's regexes: the number of `--- HH:MM:SS ---` reports, the histogram lines with a
count, and (where one probe fed both maps) a histogram's total against its count map.
New captures (real ones from a golden's run) are picked up by dropping them in.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from imagefactory.testrun.bpftrace import SCHEMA, SCRIPTS, parse_output

FIXTURES = Path(__file__).parents[2] / "fixtures" / "bpftrace"
CAPTURES = sorted(p for p in FIXTURES.glob("*/*.txt") if p.stem in SCRIPTS)


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_there_are_captures_of_every_script() -> None:
    for script in SCRIPTS:
        assert any(p.stem == script for p in CAPTURES), script


@pytest.mark.parametrize("path", CAPTURES, ids=_id)
def test_capture_parses_as_its_text_says(path: Path) -> None:
    text = path.read_text(errors="replace")
    doc = parse_output(text, path.stem)
    json.dumps(doc, allow_nan=False)
    assert doc["schema"] == SCHEMA and doc["script"] == path.stem
    if "noattach" in path.parent.name:
        assert doc["attached"] is False
        assert "attach" in doc["reason"]
        return
    assert doc["attached"] is True, doc["reason"]
    assert doc["ended"] == (f"{path.stem}.bt: done" in text)
    clocks = [
        line for line in text.splitlines() if line.startswith("--- ") and line.endswith(" ---")
    ]
    assert [i["clock"] for i in doc["intervals"]] == [c[4:12] for c in clocks]
    elapsed = [i["elapsed_s"] for i in doc["intervals"]]
    assert elapsed == sorted(elapsed) and (not elapsed or elapsed[0] == 0)
    bucket_lines = [
        line
        for line in text.splitlines()
        if line[:1] in "[(" and "|" in line and int(line.split("|")[0].split()[-1]) > 0
    ]
    parsed = [
        b
        for report in [*(i["maps"] for i in doc["intervals"]), doc["totals"]]
        for m in report.values()
        if m["kind"] == "histogram"
        for buckets in m["series"].values()
        for b in buckets
    ]
    assert len(parsed) == len(bucket_lines)
    assert sum(b["count"] for b in parsed) == sum(
        int(line.split("|")[0].split()[-1]) for line in bucket_lines
    )
    for b in parsed:
        if b["lower"] is not None and b["upper"] is not None:
            assert b["lower"] < b["upper"]
    assert doc["skipped_lines"] == 0


def _emulated(script: str) -> dict[str, Any]:
    path = FIXTURES / "host-emulated" / f"{script}.txt"
    return parse_output(path.read_text(), script)


def test_zio_histograms_agree_with_the_done_counts_and_are_in_seconds() -> None:
    doc = _emulated("zio")
    for interval in doc["intervals"]:
        latency = interval["maps"]["latency_us"]
        assert latency["unit"] == "seconds"
        done = interval["maps"]["done"]["values"]
        assert {op: sum(b["count"] for b in bs) for op, bs in latency["series"].items()} == done
    ops = doc["summary"]["ops"]
    assert set(ops) == {"read", "write", "free", "vdev-child"}
    # The emulation's reads take 20-3019 us: the median's bucket bound is within [32 us, 4 ms].
    assert 32e-6 <= ops["read"]["p50_s"] <= 4.096e-3
    assert (
        ops["read"]["p50_s"] <= ops["read"]["p90_s"] <= ops["read"]["p99_s"] <= ops["read"]["max_s"]
    )
    text = (FIXTURES / "host-emulated" / "zio.txt").read_text()
    done_total = sum(int(n) for n in re.findall(r"^@done\[read\]: (\d+)$", text, re.MULTILINE))
    assert ops["read"]["count"] == done_total


def test_txg_per_pool_figures_and_timeline() -> None:
    doc = _emulated("txg")
    pools = doc["summary"]["pools"]
    assert set(pools) == {"testpool", "rpool"}
    text = (FIXTURES / "host-emulated" / "txg.txt").read_text()
    slowest = max(int(n) for n in re.findall(r"^@slowest_ms\[rpool\]: (\d+)$", text, re.MULTILINE))
    assert pools["rpool"]["max_s"] == slowest / 1000
    last = re.findall(r"^@last_txg\[testpool\]: (\d+)$", text, re.MULTILINE)[-1]
    assert pools["testpool"]["last_txg"] == int(last)
    total = re.findall(r"^@total_syncs\[testpool\]: (\d+)$", text, re.MULTILINE)[-1]
    assert pools["testpool"]["syncs"] == int(total)
    timeline = doc["summary"]["timeline"]
    assert len(timeline) == 2 * len(doc["intervals"])
    assert {p["pool"] for p in timeline} == {"testpool", "rpool"}


def test_arc_hit_ratio_from_the_totals() -> None:
    doc = _emulated("arc")
    text = (FIXTURES / "host-emulated" / "arc.txt").read_text()
    end = text[text.index("arc.bt: done") :]
    calls = int(re.search(r"@total\[arc_read calls\]: (\d+)", end).group(1))  # type: ignore[union-attr]
    misses = int(re.search(r"@total\[miss completions\]: (\d+)", end).group(1))  # type: ignore[union-attr]
    summary = doc["summary"]
    assert summary["arc_read_calls"] == calls and summary["miss_completions"] == misses
    assert summary["hit_ratio"] == pytest.approx((calls - misses) / calls)
    assert set(summary["evicted_bytes"]) <= {"mru", "mfu"}


def test_spl_bytes() -> None:
    doc = _emulated("spl")
    text = (FIXTURES / "host-emulated" / "spl.txt").read_text()
    end = text[text.index("spl.bt: done") :]
    net = int(re.search(r"@net_bytes\[allocated - freed\]: (-?\d+)", end).group(1))  # type: ignore[union-attr]
    assert doc["summary"]["net_bytes"] == net
    allocated = sum(int(n) for n in re.findall(r"^@bytes\[allocated\]: (\d+)$", text, re.MULTILINE))
    assert doc["summary"]["allocated_bytes"] == allocated
    # print(@by_caller, 10): at most ten callers per report.
    for interval in doc["intervals"]:
        assert len(interval["maps"]["by_caller"]["values"]) <= 10
