"""The report and the drift rules on hostile values: test names, reasons and log text that
try to end the page's script or inject markup, and random threshold rules.

Each case runs in a forked child under generous caps (tests/fixtures/capped.py) that only
catch hangs and bombs; nothing here measures speed.
"""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagefactory.report.model import DistroInfo, Failure, ReportData
from imagefactory.report.render import render
from imagefactory.testrun.fingerprint_drift import parse_rule
from tests.fixtures.capped import run_capped

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_HOSTILE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["</script><script>alert(1)</script>", "<!--", "]]>", '"onload="x', "&amp;"]),
)


def _render_hostile(names: list[str], reason: str, excerpt: str) -> None:
    distro = DistroInfo(
        name="debian13",
        status="failed",
        message=reason,
        build_id=reason[:20] or None,
        zfs_version=None,
        suite_version=None,
        kernel=None,
        accel=None,
        duration_s=None,
        verdicts={"unexpected-failure": len(names)},
        links={},
        traces={},
    )
    cells = {
        n: {"debian13": {"verdict": "unexpected-failure", "result": "FAIL", "reason": reason}}
        for n in names
    }
    failures = [
        Failure("debian13", n, "unexpected-failure", "FAIL", ["FAIL"], reason, excerpt, None)
        for n in names
    ]
    data = ReportData("r1", "suite=quick", 1, [distro], sorted(cells), cells, failures)
    page = render(data)
    # Only the page's own three scripts: nothing a value held ended or opened one.
    assert len(re.findall(r"<script\b", page)) == 3
    assert len(re.findall(r"</script>", page)) == 3
    block = re.search(
        r'<script id="report-data" type="application/json">(.*?)</script>', page, re.S
    )
    assert block is not None
    json.loads(block.group(1))


@SETTINGS
@given(st.lists(_HOSTILE, min_size=1, max_size=8, unique=True), _HOSTILE, _HOSTILE)
def test_hostile_values_stay_text(names: list[str], reason: str, excerpt: str) -> None:
    run_capped(_render_hostile, names, reason, excerpt)


def _rule(text: str) -> None:
    try:
        rule = parse_rule(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert rule.pattern and 0 < rule.ratio <= 100


@SETTINGS
@given(st.one_of(st.text(max_size=40), st.from_regex(r"[a-z/*]{1,10}=-?[0-9.e]{0,8}%?")))
def test_threshold_rules_never_raise_anything_but_a_value_error(text: str) -> None:
    run_capped(_rule, text)
