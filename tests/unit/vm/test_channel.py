"""The host's side of the status channel: parsing, per-hook tracking, timings, console tails."""

from __future__ import annotations

import pytest

from imagefactory.vm.channel import (
    HookTracker,
    StatusParseError,
    hook_output_tail,
    parse_status_line,
    timing_table,
)

NAMES = ["10-a.sh", "20-b.sh", "30-c.sh"]


def feed(tracker: HookTracker, *lines: str) -> None:
    for i, line in enumerate(lines):
        tracker.apply(parse_status_line(line, received=100.0 + i))


def test_parse_a_hook_end_line() -> None:
    event = parse_status_line(b'{"hook":"10-a.sh","event":"end","rc":3,"seconds":1.5}\n', 7.0)
    assert (event.event, event.hook, event.rc, event.seconds, event.received) == (
        "end",
        "10-a.sh",
        3,
        1.5,
        7.0,
    )


def test_parse_begin_and_done_lines() -> None:
    begin = parse_status_line('{"event":"begin","hooks":3,"uptime":55.2}', 0)
    assert (begin.event, begin.hooks, begin.uptime) == ("begin", 3, 55.2)
    done = parse_status_line('{"event":"done","hooks":3,"seconds":9.0,"uptime":70.1}', 0)
    assert (done.event, done.seconds) == ("done", 9.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hello", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"event":"explode"}', "unknown event"),
        ('{"event":"start"}', "without a hook name"),
        ('{"hook":"10-a.sh","event":"end"}', "without rc"),
        ('{"hook":"10-a.sh","event":"end","rc":"3"}', "rc is not a number"),
        ('{"hook":"10-a.sh","event":"end","rc":1.5}', "not an integer"),
        ('{"hook":7,"event":"start"}', "hook is not a string"),
    ],
)
def test_malformed_lines_are_rejected(line: str, message: str) -> None:
    with pytest.raises(StatusParseError, match=message):
        parse_status_line(line, 0)


def test_all_hooks_succeed() -> None:
    tracker = HookTracker(NAMES[:2])
    feed(
        tracker,
        '{"event":"begin","hooks":2,"uptime":50}',
        '{"hook":"10-a.sh","event":"start","timeout":10,"uptime":50.1}',
        '{"hook":"10-a.sh","event":"end","rc":0,"seconds":1.25}',
        '{"hook":"20-b.sh","event":"start","timeout":10,"uptime":51.4}',
        '{"hook":"20-b.sh","event":"end","rc":0,"seconds":2.5}',
        '{"event":"done","hooks":2,"seconds":3.75,"uptime":54}',
    )
    assert tracker.outcome == "succeeded" and tracker.failed_hook is None
    assert [(r.name, r.state, r.rc, r.seconds) for r in tracker.ordered()] == [
        ("10-a.sh", "ok", 0, 1.25),
        ("20-b.sh", "ok", 0, 2.5),
    ]
    assert tracker.first_start is not None and tracker.first_start.uptime == 50.1


def test_the_first_failure_ends_the_run_and_later_hooks_never_ran() -> None:
    tracker = HookTracker(NAMES)
    feed(
        tracker,
        '{"hook":"10-a.sh","event":"start","timeout":10}',
        '{"hook":"10-a.sh","event":"end","rc":0,"seconds":1}',
        '{"hook":"20-b.sh","event":"start","timeout":10}',
        '{"hook":"20-b.sh","event":"end","rc":3,"seconds":0.5}',
    )
    assert tracker.finished and tracker.outcome == "failed"
    assert tracker.failed_hook == "20-b.sh" and tracker.message == "hook 20-b.sh exited 3"
    assert [r.state for r in tracker.ordered()] == ["ok", "failed", "not-run"]


def test_a_guest_reported_timeout() -> None:
    tracker = HookTracker(NAMES[:1])
    feed(
        tracker,
        '{"hook":"10-a.sh","event":"start","timeout":2}',
        '{"hook":"10-a.sh","event":"timeout","rc":124,"seconds":2.01}',
    )
    assert tracker.outcome == "timeout" and tracker.failed_hook == "10-a.sh"
    assert tracker.results["10-a.sh"].state == "timeout"


def test_a_host_detected_timeout_marks_the_running_hook() -> None:
    tracker = HookTracker(NAMES)
    feed(tracker, '{"hook":"10-a.sh","event":"start","timeout":2}')
    assert tracker.results["10-a.sh"].state == "running"
    tracker.host_timeout("10-a.sh", "hook 10-a.sh timed out (the guest stopped reporting)")
    assert tracker.outcome == "timeout"
    assert tracker.current is None
    assert [r.state for r in tracker.ordered()] == ["timeout", "not-run", "not-run"]


def test_a_vm_that_stops_mid_hook_fails_that_hook() -> None:
    tracker = HookTracker(NAMES)
    feed(tracker, '{"hook":"10-a.sh","event":"start","timeout":2}')
    tracker.abort("the VM stopped")
    assert tracker.outcome == "error" and tracker.failed_hook == "10-a.sh"
    assert tracker.results["10-a.sh"].state == "failed"


def test_an_unknown_hook_is_a_protocol_error() -> None:
    tracker = HookTracker(NAMES)
    feed(tracker, '{"hook":"99-x.sh","event":"start","timeout":2}')
    assert tracker.outcome == "error" and "unknown hook 99-x.sh" in (tracker.message or "")


def test_done_with_hooks_missing_is_an_error() -> None:
    tracker = HookTracker(NAMES[:2])
    feed(
        tracker,
        '{"hook":"10-a.sh","event":"start","timeout":2}',
        '{"hook":"10-a.sh","event":"end","rc":0,"seconds":1}',
        '{"event":"done","hooks":1}',
    )
    assert tracker.outcome == "error" and "20-b.sh" in (tracker.message or "")


def test_a_runner_error_ends_the_run() -> None:
    tracker = HookTracker(NAMES)
    feed(tracker, '{"event":"error","rc":1,"message":"runner exited unexpectedly"}')
    assert tracker.outcome == "error" and tracker.message == "runner exited unexpectedly"


def test_events_after_the_end_do_not_change_the_verdict() -> None:
    tracker = HookTracker(NAMES)
    feed(
        tracker,
        '{"hook":"10-a.sh","event":"start","timeout":2}',
        '{"hook":"10-a.sh","event":"end","rc":5,"seconds":1}',
        '{"event":"error","rc":1,"message":"late"}',
    )
    assert tracker.outcome == "failed" and tracker.message == "hook 10-a.sh exited 5"


def test_timing_table_lists_every_hook_with_state_rc_and_seconds() -> None:
    tracker = HookTracker(NAMES)
    feed(
        tracker,
        '{"hook":"10-a.sh","event":"start","timeout":10}',
        '{"hook":"10-a.sh","event":"end","rc":0,"seconds":1.25}',
        '{"hook":"20-b.sh","event":"start","timeout":10}',
        '{"hook":"20-b.sh","event":"end","rc":3,"seconds":12.04}',
    )
    table = timing_table(tracker.ordered()).splitlines()
    assert table[0].split() == ["hook", "state", "rc", "seconds"]
    assert table[1].split() == ["10-a.sh", "ok", "0", "1.2"]
    assert table[2].split() == ["20-b.sh", "failed", "3", "12.0"]
    assert table[3].split() == ["30-c.sh", "not-run"]
    assert table[4].split() == ["total", "13.3"]


def test_hook_output_is_cut_from_the_console_by_its_prefix() -> None:
    console = "\r\n".join(
        [
            "[   60.1] systemd[1]: Starting imagefactory-hooks.service",
            "10-a.sh| from a",
            "20-b.sh| first line",
            "[   61.0] random: crng init done20-b.sh| after a kernel message",
            "\x1b[0;31m\x1b[0m20-b.sh| coloured",
            "imagefactory: hook 20-b.sh end rc=3 after 0.1s",
            "",
        ]
    )
    assert hook_output_tail(console, "20-b.sh") == [
        "first line",
        "after a kernel message",
        "coloured",
    ]


def test_only_the_last_forty_lines_are_kept() -> None:
    console = "\n".join(f"20-b.sh| line {i}" for i in range(100))
    tail = hook_output_tail(console, "20-b.sh")
    assert len(tail) == 40 and tail[0] == "line 60" and tail[-1] == "line 99"
