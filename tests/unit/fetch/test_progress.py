"""Progress: periodic structured events off a TTY, a rich bar on one."""

from __future__ import annotations

import pytest
import structlog

from imagefactory.fetch.progress import LogProgress, RichProgress, make_progress


def test_log_progress_emits_bytes_percent_and_eta() -> None:
    progress = LogProgress("img.qcow2", interval=0.0)
    with structlog.testing.capture_logs() as events:
        progress.start(total=1000, done=250)  # resumed at 250 bytes
        progress.advance(250)
        progress.close()
    [event] = [e for e in events if e["event"] == "fetch.progress"]
    assert event["file"] == "img.qcow2"
    assert (event["bytes"], event["total"], event["percent"]) == (500, 1000, 50.0)
    assert "eta_s" in event


def test_log_progress_is_rate_limited() -> None:
    progress = LogProgress("img.qcow2", interval=3600.0)
    with structlog.testing.capture_logs() as events:
        progress.start(total=None, done=0)
        for _ in range(100):
            progress.advance(1 << 20)
    assert [e for e in events if e["event"] == "fetch.progress"] == []


def test_bar_only_when_asked_or_on_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(make_progress("x", False), LogProgress)
    assert isinstance(make_progress("x", None), LogProgress)  # pytest's stderr is no TTY
    bar = make_progress("img.qcow2", True)
    assert isinstance(bar, RichProgress)
    bar.start(total=2048, done=0)
    bar.advance(2048)
    bar.start(total=2048, done=1024)  # a retry resets the bar to the resumed offset
    bar.close()
    assert "img.qcow2" in capsys.readouterr().err
