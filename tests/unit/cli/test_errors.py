"""One table of exit statuses, one handler: every expected failure is one line with the
status of `errors.EXIT_STATUSES`; a bug is one line too, with its traceback saved (and
printed with -v).  The exceptions here are real ones, raised by the real libraries."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pydantic
import pytest
import requests

from imagefactory.cli import report
from imagefactory.errors import (
    EXIT_INFRASTRUCTURE,
    EXIT_INTERNAL,
    EXIT_STATUSES,
    EXIT_TEST_FAILURES,
    EXIT_USAGE,
    InfrastructureError,
    UsageError,
    classify,
)
from imagefactory.testrun import outcome


def missing_key() -> object:
    table: dict[str, int] = {}
    return table["missing"]


def raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("it did not raise")


def corrupt_database(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"SQLite format 3\0" + b"\xff" * 4096)
    sqlite3.connect(path).execute("select * from sqlite_master").fetchall()


class Model(pydantic.BaseModel):
    size: int


def test_library_errors_map_to_the_table(tmp_path: Path) -> None:
    cases = [
        (lambda: (tmp_path / "missing").read_text(), EXIT_INFRASTRUCTURE, "No such file"),
        (lambda: tmp_path.read_text(), EXIT_INFRASTRUCTURE, "Is a directory"),
        (lambda: requests.get("http://[::1", timeout=1), EXIT_USAGE, "invalid URL"),
        (lambda: requests.get("ftp://x/", timeout=1), EXIT_USAGE, "invalid URL"),
        (lambda: requests.get("http://127.0.0.1:9/", timeout=5), EXIT_INFRASTRUCTURE,
         "network error"),
        (lambda: corrupt_database(tmp_path), EXIT_INFRASTRUCTURE, "database error"),
        (lambda: Model(size="x"), EXIT_USAGE, "size: "),
        (lambda: b"\xff".decode(), EXIT_USAGE, "not UTF-8"),
        (lambda: (_ for _ in ()).throw(UsageError("u")), EXIT_USAGE, "u"),
        (lambda: (_ for _ in ()).throw(InfrastructureError("i")), EXIT_INFRASTRUCTURE, "i"),
    ]  # fmt: skip
    for call, status, text in cases:
        failure = classify(raised(call))
        assert failure is not None and failure.exit_status == status, (text, failure)
        assert text in failure.message and "\n" not in failure.message, failure.message


def test_a_full_disk_has_a_hint() -> None:
    failure = classify(OSError(errno.ENOSPC, "No space left on device", "/var/cache/x"))
    assert failure is not None and failure.exit_status == EXIT_INFRASTRUCTURE
    assert failure.message == "No space left on device: /var/cache/x"
    assert failure.hint is not None and "cache gc" in failure.hint


def test_bugs_are_not_classified() -> None:
    assert classify(raised(missing_key)) is None
    assert classify(raised(lambda: 1 / 0)) is None


def test_a_bug_is_one_line_with_its_traceback_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMAGEFACTORY_STATE", str(tmp_path / "state"))
    bug = raised(missing_key)
    assert report(bug, prog="imagefactory", verbose=False) == EXIT_INTERNAL
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "imagefactory: internal error: KeyError: 'missing'"
    assert err[1].startswith("hint: this is a bug") and len(err) == 2
    [saved] = (tmp_path / "state" / "crashes").iterdir()
    assert str(saved) in err[1] and "KeyError" in saved.read_text()
    assert report(bug, prog="imagefactory", verbose=True) == EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


def test_an_expected_error_is_one_line_and_a_hint_without_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = InfrastructureError("HTTP 404 from https://user:hunter2@mirror/x", hint="retry")
    assert report(error, prog="klab", verbose=False) == EXIT_INFRASTRUCTURE
    err = capsys.readouterr().err
    assert err == "klab: error: HTTP 404 from https://user:***@mirror/x\nhint: retry\n"


def test_one_table_for_the_cli_and_the_test_stage() -> None:
    assert {0, EXIT_TEST_FAILURES, EXIT_USAGE, EXIT_INFRASTRUCTURE} <= set(EXIT_STATUSES)
    assert outcome.stage_exit_status([], usage_error=True) == EXIT_USAGE
    assert json.dumps(EXIT_STATUSES)  # plain data, as the README shows it
