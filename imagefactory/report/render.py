"""The report page: the Jinja2 template filled in, with every asset inlined.

Chart.js (vendored in static/, MIT, see static/VENDORED.md), the stylesheet and the page's
script go into the HTML itself and the Content-Security-Policy forbids any fetch, so the
file works from `file://` on an air-gapped machine and a report can be mailed as one file.
Chart data travels as one JSON block, escaped so that no `</script>` in a test name or a
log can end it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import structlog
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from imagefactory.atomic import write_atomic
from imagefactory.report.model import ReportData, gather

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"
REPORT_FILE = "report.html"
EXIT_MEANINGS = {
    0: "all as expected",
    1: "unexpected test failures",
    2: "usage or configuration error",
    3: "infrastructure failure",
}
VERDICT_SYMBOLS = {
    "pass": "✓",
    "expected": "≈",
    "flaky": "↻",
    "unexpected-pass": "✓!",
    "skip": "–",
    "absent": "∅",
    "unexpected-failure": "✗",
    "crashed": "✗✗",
}
"""Marks every font has (summary.md's emoji need a colour-emoji font); colour tells the rest."""


def matrix_rows(data: ReportData) -> Markup:
    """The matrix's <tbody> rows, built here: 7,500 cells through the template engine's
    attribute lookups cost most of a report's time (bench/results.py)."""
    rows = []
    names = [d.name for d in data.distros]
    for test in data.tests:
        cells = data.cells[test]
        problem = any(c.get("verdict") != "pass" for c in cells.values())
        row_class = ' class="problem"' if problem else ""
        parts = [f'<tr{row_class}><th class="test">{escape(test)}</th>']
        for distro in names:
            c = cells.get(distro)
            if c is None:
                parts.append('<td class="v-none">·</td>')
                continue
            verdict = str(c.get("verdict"))
            title = f"{distro}: {c.get('result')}"
            attempts = c.get("attempts") or []
            if len(attempts) > 1:
                title += f" ({', '.join(str(a) for a in attempts)})"
            if c.get("reason"):
                title += f" — {c['reason']}"
            parts.append(
                f'<td class="v-{escape(verdict)}" title="{escape(title)}">'
                f"{VERDICT_SYMBOLS.get(verdict, '?')}</td>"
            )
        rows.append("".join(parts) + "</tr>")
    return Markup("\n".join(rows))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _seconds(value: float | None) -> str:
    from imagefactory.report.charts import duration_label

    return "—" if value is None else duration_label(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _bytes(value: float | None) -> str:
    if value is None:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=_duration, seconds=_seconds, percent=_percent, bytes=_bytes)
    return env


@cache
def _asset(name: str) -> str:
    text = (STATIC / name).read_text(encoding="utf-8")
    if "</" in text and not name.endswith(".css"):
        # `</script>` (or any `</`) inside an inline script would end it early.
        raise ValueError(f"{name} holds '</': it cannot be inlined in a <script>")
    return text


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no `<`, `>` or `&` survives as itself."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _axis(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"display": True, "text": title}, **extra}


def chart_specs(data: ReportData) -> list[dict[str, Any]]:
    """What the page's script draws: one entry per canvas the template made."""
    specs: list[dict[str, Any]] = []
    for index, distro in enumerate(data.distros, start=1):
        traces = distro.traces
        if "zio" in traces:
            zio = traces["zio"]
            specs.append(
                {
                    "id": f"zio-hist-{index}",
                    "type": "bar",
                    "data": zio["histogram"],
                    "options": {"scales": {"y": _axis("zios", type="logarithmic")}},
                }
            )
            specs.append(
                {
                    "id": f"zio-p99-{index}",
                    "type": "line",
                    "data": zio["p99_ms"],
                    "options": {
                        "scales": {
                            "x": _axis("seconds since tracing began", type="linear"),
                            "y": _axis("ms"),
                        }
                    },
                }
            )
        if "txg" in traces:
            specs.append(
                {
                    "id": f"txg-{index}",
                    "type": "line",
                    "data": traces["txg"]["timeline"],
                    "options": {
                        "scales": {
                            "x": _axis("seconds since tracing began", type="linear"),
                            "ms": _axis("slowest sync (ms)", position="left"),
                            "count": _axis("syncs", position="right"),
                        }
                    },
                }
            )
    pass_rate = data.trends.get("pass_rate") if data.trends else None
    if pass_rate:
        runs = sorted({p["run_id"] for points in pass_rate.values() for p in points})
        specs.append(
            {
                "id": "pass-rate",
                "type": "line",
                "data": {
                    "labels": runs,
                    "datasets": [
                        {
                            "label": distro,
                            "data": [
                                {
                                    "x": p["run_id"],
                                    "y": None if p["rate"] is None else p["rate"] * 100,
                                }
                                for p in points
                            ],
                        }
                        for distro, points in sorted(pass_rate.items())
                    ],
                },
                "options": {"scales": {"y": _axis("% passed", min=0, max=100)}},
            }
        )
    return specs


def render(data: ReportData, *, now: datetime | None = None) -> str:
    template = _environment().get_template("report.html.j2")
    verdicts = sorted({c["verdict"] for row in data.cells.values() for c in row.values()} - {None})
    return template.render(
        data=data,
        symbols=VERDICT_SYMBOLS,
        matrix_rows=matrix_rows(data),
        legend=[v for v in VERDICT_SYMBOLS if v in verdicts],
        exit_meaning=EXIT_MEANINGS.get(data.exit_status or 0, "?")
        if data.exit_status is not None
        else "unknown",
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
        # Inlined as they are: our own files, checked to hold no `</`; the JSON is escaped.
        css=Markup(_asset("report.css")),
        chart_js=Markup(_asset("chart.umd.min.js")),
        report_js=Markup(_asset("report.js")),
        charts_json=Markup(_script_json({"charts": chart_specs(data)})),
    )


def write_report(run_dir: Path, out: Path | None = None, *, history: Path | None = None) -> Path:
    """Render the report of the run in `run_dir` to `out` (default: its report.html)."""
    target = out if out is not None else run_dir / REPORT_FILE
    html = render(gather(run_dir, history=history))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, html.encode("utf-8"), mode=0o644)
    return target


def write_run_report(run_dir: Path, *, history: Path | None = None) -> Path | None:
    """report.html at the end of a run; None (and a warning) when it cannot be written.

    The run's verdicts are already in matrix.txt, summary.md, junit.xml and run.json: a page
    that fails to render must not turn a finished run into a failed one.
    """
    try:
        return write_report(run_dir, history=history)
    except Exception as exc:  # any failure here is logged: the run stands
        log.warning("report.not_written", run_dir=str(run_dir), error=str(exc), exc_info=True)
        return None


def report_json(data: ReportData) -> dict[str, Any]:
    """The gathered data as JSON (for debugging a page: `klab report --json`)."""
    return asdict(data)
