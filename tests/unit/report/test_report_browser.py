"""The report in a real browser: Debian's chromium, headless, from file:// with no network.

The run directories and history are made as `klab test` makes them (tests/fixtures/
report_runs.py: real consoles judged by the stage's judge, real bpftrace text parsed on the
host, a real SQLite history).  The page must load without a console message, show a
matrix cell for every test and distro, every unexpected failure with its log excerpt, and
the charts drawn: each canvas got pixels from Chart.js (the page's script counts them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagefactory.report.render import write_report
from tests.fixtures.report_runs import DEFAULT_DISTROS, make_runs
from tests.unit.report.browser import load, parse, screenshot


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    history = root / "history.sqlite"
    runs = make_runs(root / "runs", history, 4)
    return write_report(runs[-1], history=history), root


def test_the_page_renders_offline_with_its_matrix_failures_and_charts(
    report: tuple[Path, Path],
) -> None:
    page, root = report
    loaded = load(page, root / "profile")
    assert loaded.console == []  # no script error, no blocked fetch
    dom = parse(loaded.dom)
    body = dom.all("body")[0]
    assert body.attrs.get("data-errors") == ""
    run = json.loads((page.parent / "run.json").read_text())
    # The matrix: a row per test, a cell per distro, each in its verdict's colour.
    tests = {t["name"] for d in run["distros"] for t in d["tests"]}
    assert len(dom.all("table", "matrix")) == 1
    row_heads = [th.text.strip() for th in dom.all("th", "test")]
    assert row_heads[0] == "test" and sorted(row_heads[1:]) == sorted(tests)
    cells = [
        td
        for td in dom.all("td")
        if any(c.startswith("v-") for c in td.attrs.get("class", "").split())
    ]
    assert len(cells) == len(tests) * len(DEFAULT_DISTROS)
    failing = [td for td in cells if "v-unexpected-failure" in td.attrs["class"].split()]
    expected_failing = sum(
        t["verdict"] == "unexpected-failure" for d in run["distros"] for t in d["tests"]
    )
    assert len(failing) == expected_failing > 0
    # Every unexpected failure, with the end of its log (escaped: the log's <script> is text).
    excerpts = dom.all("pre", "excerpt")
    assert excerpts and all("ERROR:" in pre.text for pre in excerpts)
    assert any("<script>x</script>" in pre.text for pre in excerpts)
    assert len(dom.all("details", "failure")) == expected_failing
    # Charts: three per distro (zio histogram, zio p99, txg) and the pass-rate trend, drawn.
    canvases = dom.all("canvas")
    assert len(canvases) == 3 * len(DEFAULT_DISTROS) + 1
    assert body.attrs.get("data-charts") == str(len(canvases))
    for canvas in canvases:
        assert int(canvas.attrs.get("data-painted", "0")) > 1000, canvas.attrs
    # The golden of each distro and a trace that did not attach.
    text = loaded.dom
    for distro in DEFAULT_DISTROS:
        assert f"{distro}-b1" in text
    assert "arc.bt: ERROR: Error attaching probe" in text


def test_screenshot(report: tuple[Path, Path]) -> None:
    page, root = report
    shot = screenshot(page, root / "profile-shot", root / "report.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
