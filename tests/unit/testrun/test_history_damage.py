"""A damaged, read-only, foreign or newer history, and hostile `--last` values (issue 13).

Each case is provoked for real: garbage written over a data page of the file, a table
dropped with sqlite3, a read-only bind mount (as root, which ignores file modes) or file
modes (as another user).  Commands run as real processes: one error line and a hint, the
documented exit status (3 for a damaged or unwritable history, 2 for a bad option), never
a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import InfrastructureError
from imagefactory.testrun.history import SCHEMA_VERSION, History, connect, migrate
from tests.unit.testrun.history_builder import HistoryBuilder, t

TESTS = [f"rsend/rsend_{i:03d}" for i in range(400)]


def build(path: Path, runs: int = 4) -> Path:
    with HistoryBuilder.create(path) as b:
        for r in range(runs):
            b.run(
                f"run{r}",
                {
                    "debian13": [
                        t(name, "FAIL" if (i + r) % 50 == 0 else "PASS")
                        for i, name in enumerate(TESTS)
                    ]
                },
            )
    # Closing the last connection merged the WAL: the bytes below are the whole database.
    assert not path.with_name(path.name + "-wal").exists()
    return path


def klab(*argv: str, prefix: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "imagefactory", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def in_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """`klab ARGV` through the CLI's entry point in this process (argparse exits included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:
            status = int(exc.code or 0)
    return subprocess.CompletedProcess(list(argv), status, out.getvalue(), err.getvalue())


def assert_one_line_error(
    proc: subprocess.CompletedProcess[str], status: int, *needles: str
) -> None:
    assert proc.returncode == status, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], proc.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corrupt_page_holding(path: Path, needle: bytes) -> int:
    """Overwrite the whole page that holds `needle` with random bytes; return its number."""
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    offset = data.index(needle)
    page = offset // page_size
    assert page > 0, "never the header page: the file must still open"
    garbage = random.Random(page).randbytes(page_size)
    with path.open("r+b") as f:
        f.seek(page * page_size)
        f.write(garbage)
    return page + 1


# -- a corrupt data page -------------------------------------------------------------------


def test_a_corrupt_data_page_is_a_one_line_error_naming_the_file(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite")
    corrupt_page_holding(path, b"rsend/rsend_123")

    proc = klab("history", "--db", str(path), "--flaky")  # a real process: no traceback
    assert_one_line_error(proc, 3, str(path), "is damaged", "malformed")
    assert "hint: `sqlite3" in proc.stderr and ".recover" in proc.stderr
    for mode in (["--diff-last"], ["--test", "rsend_123"], ["--diff", "run0", "run3"]):
        proc = in_process("history", "--db", str(path), *mode)
        assert_one_line_error(proc, 3, str(path), "is damaged", "malformed")


def test_a_corrupt_data_page_stops_a_writer_before_it_records(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite")
    corrupt_page_holding(path, b"rsend/rsend_123")
    before = digest(path)

    # The test stage opens the history before any clone boots: nothing is run, nothing lost.
    with pytest.raises(InfrastructureError, match="is damaged") as error:
        History.open(path)

    assert str(path) in str(error.value)
    assert digest(path) == before


def test_an_intact_part_of_a_damaged_file_still_reads(tmp_path: Path) -> None:
    # The runs table lives on other pages: listing runs gives the right result.
    path = build(tmp_path / "history.sqlite")
    corrupt_page_holding(path, b"rsend/rsend_123")

    proc = in_process("history", "--db", str(path))

    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()[1:]] == [
        "run3",
        "run2",
        "run1",
        "run0",
    ]


# -- dropped tables and columns ------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ("DROP TABLE test_results", "missing table test_results"),
        ("DROP TABLE runs", "missing table runs"),
        ("ALTER TABLE test_results DROP COLUMN verdict", "missing column test_results.verdict"),
    ],
)
def test_a_dropped_table_or_column_is_found_when_the_file_is_opened(
    tmp_path: Path, statement: str, missing: str
) -> None:
    path = build(tmp_path / "history.sqlite", runs=1)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP INDEX IF EXISTS test_results_failing")
        conn.execute(statement)

    # Even `klab history`, which never reads test_results, says the file is damaged.
    assert_one_line_error(in_process("history", "--db", str(path)), 3, str(path), missing)
    with pytest.raises(InfrastructureError, match=missing):
        History.open(path)  # the test stage's writer refuses it too


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(random.Random(1).randbytes(8192))

    assert_one_line_error(in_process("history", "--db", str(path)), 3, str(path), "not a database")
    assert_one_line_error(in_process("history", "--db", str(path), "--flaky"), 3, "not a database")


def test_an_empty_file_is_not_a_history_to_read(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.touch()

    assert_one_line_error(in_process("history", "--db", str(path)), 3, "holds no table")
    assert path.stat().st_size == 0


def test_a_newer_schema_is_refused_by_readers_too(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite", runs=1)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    assert_one_line_error(in_process("history", "--db", str(path)), 3, "newer than this klab")


# -- --last ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100000000000000000000", "100000000000000000000 is too large (at most 100000)"),
        ("100001", "100001 is too large (at most 100000)"),
        ("-1", "-1 is too small (at least 1)"),
        ("1e9", "'1e9' is not a whole number"),
    ],
)
def test_an_out_of_range_last_exits_2_with_one_line(
    tmp_path: Path, value: str, message: str
) -> None:
    path = build(tmp_path / "history.sqlite", runs=1)

    for mode in ([], ["--flaky"], ["--test", "rsend_001"]):
        proc = in_process("history", "--db", str(path), *mode, "--last", value)
        assert_one_line_error(proc, 2, "argument --last", message)


def test_the_issue_s_last_exits_2_in_a_real_process(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite", runs=1)

    proc = klab("history", "--db", str(path), "--last", "100000000000000000000")

    assert_one_line_error(proc, 2, "argument --last", "too large (at most 100000)")


def test_the_largest_last_is_answered(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite", runs=2)

    proc = in_process("history", "--db", str(path), "--flaky", "--last", "100000")

    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("flake rates over the last 2 run(s) of 100000 asked")


# -- read-only -----------------------------------------------------------------------------


@contextmanager
def read_only(directory: Path) -> Iterator[list[str]]:
    """A command prefix under which `directory` cannot be written, for real.

    Root ignores file modes, so as root the directory is bind-mounted read-only in a private
    mount namespace (`unshare --mount`: nothing outside the command sees it); as another
    user the directory and its files lose their write bits.
    """
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield []
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is needed to make a directory read-only for root")
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, str(directory), "true"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.decode()[-200:]}")
    yield ["unshare", "--mount", "sh", "-c", script, str(directory)]


# Run inside the read-only namespace: several commands in one process (each a klab start
# costs seconds on a loaded host), then a writer; statuses and output back as JSON.
_UNDER_READ_ONLY = """
import contextlib, io, json, sys
from pathlib import Path
from imagefactory.cli import main, report
from imagefactory.testrun.history import History

db, runs = sys.argv[1], json.loads(sys.argv[2])
results = []
for argv in runs:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(["history", "--db", db, *argv])
        except SystemExit as exc:
            status = exc.code
    results.append([status, out.getvalue(), err.getvalue()])
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        History.open(Path(db)).start_run("x", selection="s", command="c")
        status = 0
    except Exception as exc:
        status = report(exc, prog="klab", verbose=False)
results.append([status, "", err.getvalue()])
print(json.dumps(results))
"""


def under_read_only(
    tmp_path: Path, directory: Path, db: Path, runs: list[list[str]]
) -> list[subprocess.CompletedProcess[str]]:
    script = tmp_path / "under_read_only.py"
    script.write_text(_UNDER_READ_ONLY)
    with read_only(directory) as prefix:
        proc = klab_script(prefix, script, str(db), json.dumps(runs))
    assert proc.returncode == 0, proc.stderr
    return [
        subprocess.CompletedProcess(argv, status, out, err)
        for argv, (status, out, err) in zip(
            [*runs, ["(write)"]], json.loads(proc.stdout), strict=True
        )
    ]


def klab_script(
    prefix: Sequence[str], script: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_a_read_only_history_is_read_and_left_untouched(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    path = build(directory / "history.sqlite")
    before = digest(path)
    runs = [[], ["--flaky"], ["--diff-last"], ["--test", "rsend_000"], ["--diff", "run0", "last"]]

    *reads, write = under_read_only(tmp_path, directory, path, runs)

    for proc in reads:
        assert proc.returncode == 0, (proc.args, proc.stderr)
    assert reads[0].stdout.splitlines()[1].startswith("run3")
    assert "rsend/rsend_000" in reads[1].stdout  # it failed in run0
    assert "selection suite=quick: run2 -> run3" in reads[2].stdout
    assert len(reads[3].stdout.splitlines()) == 5  # a header and four runs
    assert "selection suite=quick: run0 -> run3" in reads[4].stdout
    # Writing is refused with one line naming the file, before any change.
    assert_one_line_error(write, 3, str(path))
    assert "read-only" in write.stderr and "reading it still works" in write.stderr
    assert digest(path) == before
    assert sorted(p.name for p in directory.iterdir()) == ["history.sqlite"]


def test_an_old_read_only_history_is_upgraded_in_memory_only(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    path = directory / "history.sqlite"
    conn = connect(path)
    migrate(conn, target=2)
    conn.execute("INSERT INTO runs VALUES (1, 'old', '2026-01-01T00:00:00+00:00', NULL, 's', 'c')")
    conn.execute(
        "INSERT INTO distro_results (id, run, distro, status) VALUES (1, 1, 'rocky9', 'failed')"
    )
    conn.execute(
        "INSERT INTO test_results (distro_result, test, result, unexpected) "
        "VALUES (1, 'a/x', 'FAIL', 1)"
    )
    conn.close()
    before = digest(path)

    [proc, _] = under_read_only(tmp_path, directory, path, [["--test", "a/x", "--json"]])

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["verdict"] == "unexpected-failure"
    assert digest(path) == before
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (2,)


def test_reading_never_changes_the_database_file(tmp_path: Path) -> None:
    path = build(tmp_path / "history.sqlite")
    before = (digest(path), path.stat().st_mtime_ns)

    for mode in ([], ["--flaky"], ["--diff-last"]):
        assert in_process("history", "--db", str(path), *mode).returncode == 0

    assert (digest(path), path.stat().st_mtime_ns) == before


def test_a_write_refused_by_sqlite_itself_says_read_only(tmp_path: Path) -> None:
    # The file opens, but SQLite refuses the first write: the same line as a read-only mount.
    path = build(tmp_path / "history.sqlite", runs=1)
    history = History.open(path)
    history.conn.execute("PRAGMA query_only = ON")

    with history, pytest.raises(InfrastructureError, match="read-only") as error:
        history.start_run("x", selection="s", command="c")

    assert str(path) in str(error.value) and "reading it still works" in (error.value.hint or "")
