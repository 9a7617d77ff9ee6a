"""Baseline files: loading with file:line errors, scopes, specificity, expiry, CLI options."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest

from imagefactory.cli import main
from imagefactory.errors import SpecError, UsageError
from imagefactory.paths import project_root
from imagefactory.testrun.baseline import (
    ENV_BASELINE,
    add_baseline_arguments,
    baseline_from_args,
    baseline_paths,
    baselines_dir,
    expired_entries,
    load_baseline,
    zfs_version,
)
from imagefactory.testrun.verdict import RunContext

ISSUE_EXAMPLE = """\
- test: casenorm/mixed_formd_lookup_ci      # path under functional/, or an fnmatch glob
  result: FAIL                              # FAIL, SKIP, KILLED, or a list of them
  kind: known                               # known | flaky
  reason: https://github.com/openzfs/zfs/issues/7633
- test: rsend/send-c_verify_ratio
  result: KILLED
  kind: flaky
  reason: hits its 10-minute limit under TCG on a loaded host
  zfs: ">=2.3,<2.4"                         # a version specifier (use `packaging`)
  distros: [debian13]
  accel: tcg
  expires: 2027-06-30                       # optional: after it, due for review
"""

DEBIAN_TCG = RunContext(distro="debian13", zfs_version="2.3.9-1", kernel="6.12.48", accel="tcg")


def write(tmp_path: Path, text: str, name: str = "b.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_baseline([path])
    return str(caught.value).splitlines()


def test_the_issues_example_loads(tmp_path: Path) -> None:
    baseline = load_baseline([write(tmp_path, ISSUE_EXAMPLE)])

    first, second = baseline.entries
    assert (first.spec.test, first.spec.result, first.spec.kind) == (
        "casenorm/mixed_formd_lookup_ci",
        ("FAIL",),
        "known",
    )
    assert first.origin == f"{tmp_path}/b.yaml:1" and second.origin == f"{tmp_path}/b.yaml:5"
    assert second.spec.distros == ("debian13",) and second.spec.accel == "tcg"
    assert second.spec.expires == date(2027, 6, 30)
    assert second.scopes == ("distros", "zfs", "accel")
    assert baseline.digest is not None and len(baseline.digest) == 64


def test_every_error_is_reported_at_its_line_with_its_field(tmp_path: Path) -> None:
    lines = errors_of(
        tmp_path,
        """\
- test: a/b
  result: [FAIL, PASS]
  kind: known
  reason: x
- test: rsend/x
  result: KILLED
  kind: flak
  reason: "  "
  zfs: 2.10
  distros: []
  kernel: "(("
  colour: red
- 3
- {test: a/c}
- test: a/d
  result: FAIL
  kind: known
  reason: r
  zfs: "2.3 or so"
""",
    )
    assert "b.yaml:2: result[1]: Input should be 'FAIL', 'SKIP' or 'KILLED'" in lines[0]
    text = "\n".join(lines)
    for expected in (
        "b.yaml:7: kind: Input should be 'known' or 'flaky'",
        "b.yaml:8: reason: say why",
        "b.yaml:9: zfs: quote it",
        "b.yaml:10: distros:",
        "b.yaml:11: kernel: invalid regular expression '(('",
        "b.yaml:12: colour: unknown key",
        "b.yaml:13: an entry is a mapping",
        "b.yaml:14: result: required field is missing",
        "b.yaml:14: reason: required field is missing",
        "b.yaml:19: zfs: invalid version specifier '2.3 or so'",
    ):
        assert expected in text, expected
    assert all(line.startswith(f"{tmp_path}/b.yaml:") for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("test: a/b\n", "b.yaml:1: a baseline is a list of entries"),
        ("- test: [a\n", "b.yaml:2: invalid YAML"),
        ("- test: a/b\n  test: a/c\n", "b.yaml:2: test: duplicate key"),
        ("- test: {x: 1}\n", "b.yaml:1: test: expected a value or a list, not a mapping"),
        ("- distros: [[debian13]]\n", "b.yaml:1: distros: expected a list of plain values"),
        ("- {1: x}\n", "b.yaml:1: keys must be strings"),
        ("- expires: !!timestamp nope\n", "b.yaml:1: invalid value"),
        ("- test: !!python/object:os.system x\n", "b.yaml:1: invalid value"),
        ("- test: a b\n  result: FAIL\n  kind: known\n  reason: r\n", "b.yaml:1: test: a test"),
    ],
)
def test_malformed_files_are_spec_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in "\n".join(errors_of(tmp_path, text))


def test_two_entries_for_the_same_test_scope_and_result_are_an_error(tmp_path: Path) -> None:
    entry = "- {test: a/b, result: [FAIL, SKIP], kind: known, reason: r, distros: [d]}\n"
    other = "- {test: a/b, result: SKIP, kind: flaky, reason: s, distros: d}\n"
    first = write(tmp_path, entry, "one.yaml")
    second = write(tmp_path, other, "two.yaml")

    with pytest.raises(SpecError, match=r"two.yaml:1: test: a/b SKIP duplicates .*one.yaml:1"):
        load_baseline([first, second])
    # A different scope is another fact, not a duplicate.
    write(tmp_path, other.replace("distros: d", "distros: e"), "two.yaml")
    assert len(load_baseline([first, second]).entries) == 2


def test_directories_load_their_yaml_files_in_order_and_missing_paths_are_usage_errors(
    tmp_path: Path,
) -> None:
    write(tmp_path, "- {test: b/x, result: FAIL, kind: known, reason: r}\n", "b.yaml")
    write(tmp_path, "- {test: a/x, result: FAIL, kind: known, reason: r}\n", "a.yml")
    write(tmp_path, "not a baseline", "notes.txt")
    write(tmp_path, "", "empty.yaml")

    baseline = load_baseline([tmp_path])

    assert [e.spec.test for e in baseline.entries] == ["a/x", "b/x"]
    assert [Path(f).name for f in baseline.files] == ["a.yml", "b.yaml", "empty.yaml"]
    with pytest.raises(UsageError, match="no such baseline file"):
        load_baseline([tmp_path / "nope.yaml"])
    (tmp_path / "void").mkdir()
    with pytest.raises(UsageError, match="no baseline file"):
        load_baseline([tmp_path / "void"])


def test_the_digest_follows_the_files_content(tmp_path: Path) -> None:
    path = write(tmp_path, ISSUE_EXAMPLE)
    before = load_baseline([path]).digest
    path.write_text(ISSUE_EXAMPLE.replace("7633", "7634"), encoding="utf-8")
    assert load_baseline([path]).digest != before


def test_full_paths_are_normalised_like_result_lines(tmp_path: Path) -> None:
    text = (
        "- test: /usr/share/zfs/zfs-tests/tests/functional/rsend/rsend_001_pos.ksh\n"
        "  result: FAIL\n  kind: known\n  reason: r\n"
    )
    [entry] = load_baseline([write(tmp_path, text)]).entries
    assert entry.spec.test == "rsend/rsend_001_pos"


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("2.3.2-2", "2.3.2"),
        ("zfs-2.4.0-rc1", "2.4.0rc1"),
        ("2.2.2-0ubuntu9.1", "2.2.2"),
        ("zfs-kmod-2.2.9-1.el9", "2.2.9"),
        ("2.4", "2.4"),
    ],
)
def test_zfs_versions_are_read_from_package_style_strings(text: str, version: str) -> None:
    found = zfs_version(text)
    assert found is not None and str(found) == version


def test_a_version_that_cannot_be_read_is_none() -> None:
    assert zfs_version(None) is None
    assert zfs_version("unknown") is None


SCOPED = """\
- {test: rsend/x, result: FAIL, kind: known, reason: any}
- {test: "rsend/*", result: FAIL, kind: flaky, reason: glob, distros: [debian13], accel: tcg}
- {test: rsend/x, result: FAIL, kind: flaky, reason: tcg, accel: tcg}
- {test: rsend/x, result: FAIL, kind: flaky, reason: debian tcg, distros: [debian13], accel: tcg}
- {test: rsend/x, result: FAIL, kind: flaky, reason: "2.2", zfs: "==2.2.*"}
- {test: rsend/x, result: FAIL, kind: flaky, reason: kernel 6.1, kernel: '^6\\.1\\.'}
- {test: rsend/x, result: FAIL, kind: flaky, reason: kvm, accel: kvm}
"""


def test_the_most_specific_matching_entry_comes_last(tmp_path: Path) -> None:
    baseline = load_baseline([write(tmp_path, SCOPED)])

    found = baseline.lookup("rsend/x", DEBIAN_TCG)

    # zfs 2.3.9, kernel 6.12 and tcg rule out the 2.2, 6.1 and kvm entries.
    assert [e.spec.reason for e in found.entries] == ["glob", "any", "tcg", "debian tcg"]
    assert found.unknown == []
    # The glob names the other tests of its group; the exact entries do not.
    other = baseline.lookup("rsend/y", DEBIAN_TCG)
    assert [e.spec.reason for e in other.entries] == ["glob"]


def test_an_entry_scoped_by_what_the_run_does_not_know_is_not_applied(tmp_path: Path) -> None:
    baseline = load_baseline([write(tmp_path, SCOPED)])

    found = baseline.lookup("rsend/x", RunContext(distro="debian13"))

    assert [e.spec.reason for e in found.entries] == ["any"]
    unknown = {e.spec.reason: fields for e, fields in found.unknown}
    assert unknown == {
        "glob": ["accel"],
        "tcg": ["accel"],
        "debian tcg": ["accel"],
        "2.2": ["zfs"],
        "kernel 6.1": ["kernel"],
        "kvm": ["accel"],
    }


def test_expired_entries_are_listed(tmp_path: Path) -> None:
    baseline = load_baseline([write(tmp_path, ISSUE_EXAMPLE)])
    assert expired_entries(baseline, date(2027, 6, 30)) == []
    assert [e.spec.test for e in expired_entries(baseline, date(2027, 7, 1))] == [
        "rsend/send-c_verify_ratio"
    ]


def test_the_repositorys_baselines_load_and_hold_upstream_and_our_own_facts() -> None:
    baseline = load_baseline([baselines_dir()])

    assert baselines_dir() == project_root() / "baselines"
    assert set(baseline.files) >= {
        "baselines/upstream-2.2.yaml",
        "baselines/upstream-2.3.yaml",
        "baselines/upstream-2.4.yaml",
        "baselines/debian13-tcg.yaml",
    }
    on_23 = RunContext(distro="debian13", zfs_version="2.3.9", kernel="6.12.48", accel="tcg")
    [formd] = baseline.lookup("casenorm/mixed_formd_lookup", on_23).entries
    assert formd.spec.reason == "https://github.com/openzfs/zfs/issues/7633"
    assert formd.spec.kind == "known" and formd.origin.startswith("baselines/upstream-2.3.yaml:")
    [ratio] = baseline.lookup("rsend/send-c_verify_ratio", on_23).entries
    assert ratio.spec.result == ("KILLED",) and ratio.spec.kind == "flaky"
    # Under KVM, or on another distro, our TCG facts do not hold.
    kvm = RunContext(distro="debian13", zfs_version="2.3.9", kernel="6.12.48", accel="kvm")
    assert baseline.lookup("rsend/send-c_verify_ratio", kvm).entries == []
    # The 2.2 lists do not apply to 2.3.
    on_22 = RunContext(distro="ubuntu24", zfs_version="2.2.2", kernel="6.8.0", accel="kvm")
    [zvol] = baseline.lookup("zvol/zvol_misc/zvol_misc_snapdev", on_22).entries
    assert zvol.spec.zfs == ">=2.2,<2.2.7"
    assert baseline.lookup("zvol/zvol_misc/zvol_misc_snapdev", on_23).entries == []


def parse_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_baseline_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_environment_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BASELINE, raising=False)
    one = write(tmp_path, ISSUE_EXAMPLE, "one.yaml")
    two = write(tmp_path, "", "two.yaml")

    assert baseline_paths(parse_args()) == [baselines_dir()]
    assert baseline_paths(parse_args("--baseline", str(one), "--baseline", str(two))) == [one, two]
    assert baseline_paths(parse_args("--no-baseline")) is None
    assert baseline_from_args(parse_args("--no-baseline")) is None
    monkeypatch.setenv(ENV_BASELINE, f"{one}:{two}")
    assert baseline_paths(parse_args()) == [one, two]
    loaded = baseline_from_args(parse_args())
    assert loaded is not None and len(loaded.entries) == 2
    # An explicit option wins over the environment.
    assert baseline_paths(parse_args("--baseline", str(two))) == [two]
    with pytest.raises(UsageError, match="exclude each other"):
        baseline_paths(parse_args("--no-baseline", "--baseline", str(one)))


@pytest.mark.parametrize("pattern", ["(a+)+$", "^6(\\\\.\\\\d+)+", "(a|aa)+", "(?=(x*)*)"])
def test_a_kernel_regex_that_could_backtrack_forever_is_refused(
    tmp_path: Path, pattern: str
) -> None:
    text = f"- {{test: a/b, result: FAIL, kind: known, reason: r, kernel: '{pattern}'}}\n"
    [line] = errors_of(tmp_path, text)
    assert "b.yaml:1: kernel:" in line and "exponential time" in line


def test_plain_kernel_regexes_are_accepted(tmp_path: Path) -> None:
    text = "- {test: a/b, result: FAIL, kind: known, reason: r, kernel: '^6\\.(1|12)\\.[0-9]+'}\n"
    [entry] = load_baseline([write(tmp_path, text)]).entries
    assert entry.kernel is not None and entry.kernel.search("6.12.48+deb13-amd64")


def test_validate_checks_the_repositorys_baselines_and_those_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(
        tmp_path,
        "- {test: a/b, result: FAIL, kind: known, reason: r, distros: [almalinux9],\n"
        "   expires: 2020-01-01}\n",
        "good.yaml",
    )
    bad = write(tmp_path, "- {test: a/b, result: FAIL, kind: sometimes, reason: r}\n", "bad.yaml")

    assert main(["validate", "--baseline", str(good)]) == 0
    captured = capsys.readouterr()
    assert "ok  baselines/upstream-2.3.yaml  (135 baseline entries)" in captured.out
    assert f"ok  {good}  (1 baseline entries)" in captured.out
    assert f"note: {good}:1: expired on 2020-01-01: review it" in captured.err
    assert f"note: {good}:1: distros: 'almalinux9' has no spec here" in captured.err

    assert main(["validate", "--baseline", str(good), "--baseline", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1: kind: Input should be 'known' or 'flaky'" in err
    assert "1 baseline file(s) invalid" in err
