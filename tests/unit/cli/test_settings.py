"""Settings declared once: the README's table, the one state directory, the shared options,
the lineage's one word (and its accepted older spellings), one job sizer, one exit table."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from imagefactory import settings
from imagefactory.builder.statedir import state_root
from imagefactory.cli import build_parser, main
from imagefactory.commands.golden import _report
from imagefactory.errors import (
    EXIT_INFRASTRUCTURE,
    EXIT_OK,
    EXIT_TEST_FAILURES,
    EXIT_USAGE,
    ImageFactoryError,
    InfrastructureError,
    UsageError,
    worst_exit_status,
)
from imagefactory.spec.loader import load_distro, load_spec_file, parse_kind
from imagefactory.testrun.artifacts import run_dir
from imagefactory.testrun.history import default_db_path
from imagefactory.testrun.jobs import resolve_jobs

if TYPE_CHECKING:
    from imagefactory.builder.pipeline import BuildOutcome

REPO = Path(__file__).resolve().parents[3]
GIB = 1024**3


def test_the_readme_table_is_the_settings_modules_output() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- settings-table[^>]*-->\n(.*?)<!-- /settings-table -->", readme, re.S)
    assert found, "README.md lost its settings table markers"
    assert found.group(1) == settings.markdown_table()
    for var in settings.VARIABLES:
        assert f"`{var.name}`" in found.group(1)


def test_every_environment_variable_read_in_the_package_is_declared() -> None:
    """A new os.environ read outside settings.py is a setting nobody documented."""
    allowed = {"settings.py", "signature.py"}  # GNUPGHOME: a child's environment, not a read
    offenders = []
    for path in (REPO / "imagefactory").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name not in allowed and re.search(r"os\.environ\.get|os\.getenv", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_one_state_directory_and_its_deprecated_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("IMAGEFACTORY_STATE", raising=False)
    monkeypatch.delenv("KLAB_LOG_DIR", raising=False)
    monkeypatch.setenv("KLAB_STATE_DIR", str(tmp_path / "old"))
    settings._warned.clear()
    with caplog.at_level("WARNING"):
        assert settings.state_dir() == tmp_path / "old"
        settings.state_dir()
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == [
        "KLAB_STATE_DIR is deprecated: set IMAGEFACTORY_STATE instead (it wins when both are set)"
    ]  # once per process
    # Everything lives under it: builds, the history, the run directories.
    assert state_root() == tmp_path / "old"
    assert default_db_path() == tmp_path / "old" / "history.sqlite"
    assert run_dir("r1") == tmp_path / "old" / "runs" / "r1"

    monkeypatch.setenv("IMAGEFACTORY_STATE", str(tmp_path / "new"))
    assert settings.state_dir() == tmp_path / "new"
    assert default_db_path() == tmp_path / "new" / "history.sqlite"
    monkeypatch.setenv("KLAB_LOG_DIR", str(tmp_path / "logs"))
    assert run_dir("r1") == tmp_path / "logs" / "r1"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEFACTORY_CACHE", "")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert settings.cache_dir() == Path("/var/cache/imagefactory")


def option_strings(argv: list[str]) -> dict[str, argparse.Action]:
    """The actions of the sub-command parser `argv` names."""
    parser = build_parser()
    sub: argparse.ArgumentParser = parser
    for word in argv:
        choices = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices
        sub = choices[word]
    return {s: a for a in sub._actions for s in a.option_strings}


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (["golden"], ("--store", "--cache-dir", "--mirror", "--package-mirror", "--accel")),
        (["build"], ("--store", "--cache-dir", "--mirror", "--lineage")),
        (["fetch"], ("--cache-dir", "--mirror")),
        (["rc"], ("--store", "--cache-dir", "--mirror", "--history", "--baseline")),
        (["test"], ("--store", "--accel", "--history", "--baseline")),
        (["status"], ("--store",)),
        (["gc"], ("--store",)),
        (["verify"], ("--store",)),
        (["plan"], ("--store", "--lineage")),
        (["seed"], ("--lineage",)),
        (["cache", "gc"], ("--cache-dir",)),
    ],
)
def test_shared_options_have_one_help_text(argv: list[str], options: tuple[str, ...]) -> None:
    reference = {
        "--store": option_strings(["status"])["--store"].help,
        "--cache-dir": option_strings(["fetch"])["--cache-dir"].help,
        "--mirror": option_strings(["fetch"])["--mirror"].help,
    }
    actions = option_strings(argv)
    for option in options:
        assert option in actions, (argv, option)
        if option in reference:
            assert actions[option].help == reference[option], (argv, option)


def test_lineage_is_one_word_and_the_old_spellings_stay_accepted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    spellings = (("lean", "lean"), ("ztest", "ztest"), ("regular", "lean"), ("golden", "lean"))
    for given, meant in spellings:
        assert parser.parse_args(["plan", "debian13", "--lineage", given]).lineage == meant
        assert parser.parse_args(["build", "debian13", "--kind", given]).lineage == meant
    assert parser.parse_args(["golden", "debian13"]).lineage == "lean"
    assert parser.parse_args(["golden-ztest", "debian13"]).lineage == "ztest"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["plan", "debian13", "--lineage", "fat"])
    assert exc.value.code == EXIT_USAGE
    assert "invalid choice: 'fat' (choose from lean, ztest)" in capsys.readouterr().err
    # --kind is accepted but not advertised.
    with pytest.raises(SystemExit):
        parser.parse_args(["plan", "--help"])
    help_text = capsys.readouterr().out
    assert "--lineage {lean,ztest}" in help_text and "--kind" not in help_text
    assert [parse_kind(v, {}) for v in ("lean", "regular", "golden", "ztest")] == [
        "lean",
        "lean",
        "lean",
        "ztest",
    ]
    assert parse_kind(None, {"KLAB_GOLDEN_KIND": "regular"}) == "lean"
    with pytest.raises(UsageError, match="KLAB_GOLDEN_KIND='fat': use lean or ztest"):
        parse_kind(None, {"KLAB_GOLDEN_KIND": "fat"})


def test_plan_says_lean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "debian13", "--kind", "regular"]) == 0
    out = capsys.readouterr().out
    assert "lineage:  lean" in out and "hooks (lean):" in out
    assert "golden:   " in out and "klab-golden-debian" in out  # golden names do not change


def test_a_spec_with_the_old_keys_still_loads_and_both_is_an_error(tmp_path: Path) -> None:
    base = (REPO / "distros" / "debian13.yaml").read_text(encoding="utf-8")
    defaults = REPO / "distros" / "_defaults.yaml"
    old = tmp_path / "old.yaml"
    old.write_text(base + "disk:\n  regular: 7GiB\n  ztest: 41GiB\n", encoding="utf-8")
    spec, _ = load_spec_file(old, env={}, defaults=defaults)
    assert spec.disk.for_lineage("lean") == 7 * GIB  # over a defaults layer that says lean
    both = tmp_path / "both.yaml"
    both.write_text(base + "disk:\n  regular: 7GiB\n  lean: 8GiB\n", encoding="utf-8")
    older = r"both.yaml:\d+: disk.regular: the older name of disk.lean"
    with pytest.raises(UsageError, match=older):
        load_spec_file(both, env={}, defaults=defaults)


def test_a_golden_recorded_as_regular_reads_back_as_lean() -> None:
    from imagefactory.store.base import Provenance

    prov = Provenance.from_properties({"lineage": "regular", "distro": "debian13"})
    assert prov.lineage == "lean"


def test_one_job_sizer_for_builds_and_clones() -> None:
    specs = [load_distro(name, lineage="ztest", env={}).spec for name in ("debian13", "centos9")]
    assert resolve_jobs(8, specs) == 2  # never more than distros
    assert resolve_jobs(8, specs, within_host=True) <= 2
    with pytest.raises(UsageError):
        resolve_jobs(0, specs)


def test_the_worst_exit_status_wins() -> None:
    assert worst_exit_status([]) == EXIT_OK
    assert worst_exit_status([EXIT_TEST_FAILURES, EXIT_INFRASTRUCTURE]) == EXIT_INFRASTRUCTURE
    assert worst_exit_status([EXIT_INFRASTRUCTURE, EXIT_USAGE, EXIT_OK]) == EXIT_USAGE


def test_golden_all_exits_3_when_a_build_failed_for_infrastructure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results: list[tuple[str, BuildOutcome | ImageFactoryError]] = [
        ("debian13", InfrastructureError("qemu exited 1")),
        ("centos9", ImageFactoryError("checksum mismatch")),
    ]
    assert _report(results) == EXIT_INFRASTRUCTURE
    assert "FAILED  debian13: qemu exited 1" in capsys.readouterr().err


def test_the_deprecated_variable_warns_on_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "KLAB_STATE_DIR": str(tmp_path)}
    env.pop("IMAGEFACTORY_STATE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "imagefactory", "--log-format", "console", "history"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "KLAB_STATE_DIR is deprecated: set IMAGEFACTORY_STATE" in proc.stderr
    assert f"no test history yet ({tmp_path / 'history.sqlite'})" in proc.stderr


Named = tuple[tuple[str, ...], argparse.ArgumentParser]


def every_parser(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Named]:
    found: list[Named] = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += every_parser(sub, (*path, name))
    return found


def test_every_command_formats_its_help() -> None:
    """argparse %-formats help texts only when --help is asked: a stray % is a traceback."""
    parsers = every_parser(build_parser())
    assert len(parsers) > 20
    for path, parser in parsers:
        assert parser.format_help(), path
