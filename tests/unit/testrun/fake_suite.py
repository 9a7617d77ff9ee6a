"""A stand-in for an installed ZFS Test Suite, to run the guest runner on this host.

The real suite needs ZFS, loop devices and hours; the runner's contract with the host
(which flags it passes, which runfile it writes, what it collects, how it writes the
results disk) needs none of that.  `FakeSuite` lays out the installed suite's shape
(zfs-tests.sh, zfs-tests/tests/functional/..., runfiles/) with a zfs-tests.sh that, like
the real one, reads its options with a getopts string (an unknown option prints usage
and exits 0), runs the runfile given with -r by printing result lines and a Results
Summary, and leaves a test_results/<timestamp>/ tree behind a `current` symlink.  Each
run records the runfile it got (`runfiles_run`), so retries can be checked.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from imagefactory.paths import hooks_dir

DATA = Path(__file__).resolve().parent / "data"

OPTS_2_2_2 = "hvqxkKfScRmn:d:s:r:?t:T:u:I:"
OPTS_2_3 = "hvqxkKfScRmn:d:Ds:r:?t:T:u:I:"
OPTS_2_4 = "hvqxkKfScRmOn:d:Ds:r:?t:T:u:I:"

# The fake zfs-tests.sh: Python, with the getopts line the runner reads in its docstring.
_ZTS = '''#!/usr/bin/env python3
"""Fake zfs-tests.sh for the runner's unit tests.
while getopts '{opts}' OPTION; do
"""
import configparser, ast, datetime, json, os, pathlib, sys, time

OPTS = "{opts}"
args = sys.argv[1:]
pathlib.Path(os.environ["FAKE_ZTS_ARGS"]).write_text(json.dumps(args))
runfiles = None
i = 0
while i < len(args):
    flag = args[i]
    letter = flag[1:]
    if not flag.startswith("-") or letter not in OPTS.replace(":", ""):
        print("Usage: zfs-tests.sh [-hvqxkfS] [-s SIZE] [-r RUNFILES]")
        sys.exit(0)
    if OPTS[OPTS.index(letter) + 1 : OPTS.index(letter) + 2] == ":":
        if letter == "r":
            runfiles = args[i + 1]
        i += 2
    else:
        i += 1
with open(os.environ["FAKE_ZTS_ARGS"] + ".runs", "a") as runs:
    runs.write(json.dumps(pathlib.Path(runfiles).read_text()) + "\\n")
if os.environ.get("FAKE_ZTS_HANG"):
    print("Test: /usr/share/zfs/zfs-tests/tests/functional/atime/atime_001_pos "
          "(run as root) [00:01] [PASS]", flush=True)
    time.sleep(3600)
root = pathlib.Path(os.environ["KLAB_TEST_RESULTS_DIR"])
stamp = datetime.datetime.now().strftime("%Y%m%dT%H%M%S")
out = root / stamp
out.mkdir(parents=True)
current = root / "current"
if current.is_symlink():
    current.unlink()
current.symlink_to(out)
parser = configparser.RawConfigParser()
parser.read(runfiles.split(","))
counts = {{}}
lines = []
for section in parser.sections():
    path = section.split(":")[0]
    for test in ast.literal_eval(parser.get(section, "tests")):
        result = "FAIL" if "fail" in test else "PASS"
        counts[result] = counts.get(result, 0) + 1
        if "flaky" in test:  # fails (or is killed) once, then passes: a marker remembers
            marker = root / f".flaky-{{test}}"
            result = "PASS" if marker.exists() else "KILLED" if "killed" in test else "FAIL"
            marker.touch()
        ident = " (Linux)" if ":Linux" in section else ""
        line = (f"Test{{ident}}: /usr/share/zfs/zfs-tests/{{path}}/{{test}} "
                f"(run as root) [00:01] [{{result}}]")
        print(line, flush=True)
        lines.append(line)
        where = out / path.split("/", 2)[-1] / test
        where.mkdir(parents=True)
        (where / "merged").write_text(f"output of {{test}}\\n")
(out / "log").write_text("\\n".join(lines) + "\\n")
print("\\nResults Summary")
for key, n in counts.items():
    print(f"{{key}}\\t{{n:4d}}")
print("\\nRunning Time:\\t00:00:42")
print(f"Log directory:\\t{{out}}")
sys.exit(0)
'''

_BPFTRACE = """#!/usr/bin/env python3
import signal, sys, time
def done(signum, frame):
    print("@done[read]: 3", flush=True)
    sys.exit(0)
signal.signal(signal.SIGINT, done)
print("Attaching 3 probes...", flush=True)
while True:
    time.sleep(0.1)
"""

TESTS = {
    "atime": ["atime_001_pos", "atime_002_neg"],
    "cli_root/zpool_create": ["zpool_create_001_pos", "zpool_create_002_pos"],
    "casenorm": ["sensitive_none_fail"],
    "rsend": ["rsend_001_pos", "rsend_002_flaky", "rsend_003_fail", "rsend_004_killed_flaky"],
}
"""Tests named *fail* always FAIL, *flaky* FAIL (*killed_flaky*: KILLED) once, then PASS."""


def _executable(path: Path, text: str = "#!/bin/ksh\nexit 0\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@dataclass
class FakeSuite:
    root: Path

    @property
    def zts(self) -> Path:
        return self.root / "share" / "zfs-tests.sh"

    @property
    def suite(self) -> Path:
        return self.root / "share" / "zfs-tests"

    @property
    def runfiles(self) -> Path:
        return self.root / "share" / "runfiles"

    @property
    def results(self) -> Path:
        return self.root / "test_results"

    @property
    def facts(self) -> Path:
        return self.root / "golden.json"

    @property
    def args_file(self) -> Path:
        return self.root / "zts-args.json"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def recipes(self) -> Path:
        return self.root / "recipes"

    def zts_args(self) -> list[str]:
        data: list[str] = json.loads(self.args_file.read_text())
        return data

    def runfiles_run(self) -> list[str]:
        """The runfile of each zfs-tests.sh run, first to last."""
        path = self.args_file.with_name(self.args_file.name + ".runs")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def env(self) -> dict[str, str]:
        """What the runner needs to run against this suite instead of the guest's."""
        return {
            "KLAB_GOLDEN_FACTS": str(self.facts),
            "KLAB_TEST_RESULTS_DIR": str(self.results),
            "KLAB_RECIPES_DIR": str(self.recipes),
            "KLAB_BPF_DIR": str(self.root / "zfs-bt"),
            "KLAB_WORK_DIR": str(self.root),
            "KLAB_LOAD_ZFS": "0",
            "KLAB_BPF_ATTACH_WAIT": "10",
            "FAKE_ZTS_ARGS": str(self.args_file),
            "PATH": f"{self.bin}:{os.environ['PATH']}",
        }


def make_fake_suite(root: Path, *, opts: str = OPTS_2_3, version: str = "2.3.9-1") -> FakeSuite:
    fake = FakeSuite(root)
    _executable(fake.zts, _ZTS.format(opts=opts))
    functional = fake.suite / "tests" / "functional"
    for group, tests in TESTS.items():
        for test in [*tests, "setup", "cleanup"]:
            _executable(functional / group / f"{test}.ksh")
    _executable(functional / "atime" / "atime_003_pos.ksh")  # linux.run's
    fake.runfiles.mkdir(parents=True)
    common = ["[DEFAULT]", "pre = setup", "post = cleanup", "timeout = 600",
              "outputdir = /var/tmp/test_results", "tags = ['functional']", ""]  # fmt: skip
    for group, tests in TESTS.items():
        tag = group.split("/")[0]
        common += [f"[tests/functional/{group}]", f"tests = {tests!r}",
                   f"tags = ['functional', '{tag}']", ""]  # fmt: skip
    (fake.runfiles / "common.run").write_text("\n".join(common))
    (fake.runfiles / "linux.run").write_text(
        "[DEFAULT]\npre = setup\npost = cleanup\ntags = ['functional']\n\n"
        "[tests/functional/atime:Linux]\ntests = ['atime_003_pos']\n"
        "tags = ['functional', 'atime']\n"
    )
    (fake.runfiles / "quick.run").write_text(
        "[DEFAULT]\npre = setup\npost = cleanup\noutputdir = /var/tmp/test_results\n"
        "tags = ['functional']\n\n"
        "[tests/functional/atime]\ntests = ['atime_001_pos', 'root_atime_on']\n"
        "tags = ['functional', 'atime']\n\n"
        "[tests/functional/cli_root/zpool_create]\ntests = ['zpool_create_001_pos']\n"
        "tags = ['functional', 'cli_root', 'zpool_create']\n"
    )
    fake.facts.write_text(
        json.dumps(
            {
                "zfs_version": version,
                "suite_version": version,
                "zfs_tests_sh": str(fake.zts),
                "runfile_dir": str(fake.runfiles),
            }
        )
    )
    _executable(fake.bin / "bpftrace", _BPFTRACE)
    for name in ("zio", "txg"):
        (fake.root / "zfs-bt").mkdir(exist_ok=True)
        (fake.root / "zfs-bt" / f"{name}.bt").write_text("BEGIN { }\n")
    fake.recipes.mkdir()
    (fake.recipes / "_lib.sh").write_text('pass() { echo "${0##*/}: PASS"; }\n')
    _executable(fake.recipes / "installed-ok", "#!/usr/bin/env bash\necho installed ok\n")
    return fake


@dataclass(frozen=True)
class RealShape:
    """A real release's suite laid out as installed: scripts (stubs) and its runfiles."""

    suite: Path
    runfiles: Path
    version: str


def make_real_shape(root: Path, version: str = "2.3.9") -> RealShape:
    """The suite of OpenZFS `version` (from data/, see make_suite_shape.py), plus the lab's
    curated runfiles as 60-payload.sh installs them next to upstream's."""
    data = json.loads(gzip.decompress((DATA / f"zfs-tests-{version}-shape.json.gz").read_bytes()))
    shape = RealShape(root / "zfs-tests", root / "runfiles", version)
    for script in data["scripts"]:
        _executable(shape.suite / script, "#!/bin/ksh\n")
    shape.runfiles.mkdir(parents=True)
    for name, text in data["runfiles"].items():
        (shape.runfiles / name).write_text(text)
    for curated in (hooks_dir() / "payload" / "runfiles").glob("*.run"):
        (shape.runfiles / curated.name).write_bytes(curated.read_bytes())
    return shape
