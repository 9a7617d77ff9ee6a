"""Real run directories of a sharded run, cut from a recorded console, for merge tests.

The committed Debian 13 quick run (zts-2.3.9-debian13-quick-real.log: 98 tests, one FAIL,
one KILLED) is split the way `klab test --shard i/N` splits it: its sections come from a
suite inventory (the real format, `parse_inventory`), are weighed with a durations snapshot
taken from the console's own times and balanced (`shard.split_distro`).  Each shard's
console is the real result lines of its sections, with the Results Summary and zts-report
lines zfs-tests.sh would have printed for them.  The run directory is then written the way
the stage writes it: judged from its artifacts (`collect.judge`), then `write_run_files`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from imagefactory.testrun.collect import GoldenFacts, Judging, judge
from imagefactory.testrun.durations import Durations
from imagefactory.testrun.inventory import Inventory, parse_inventory
from imagefactory.testrun.results import ParsedRun, TestResult, parse_file
from imagefactory.testrun.run_files import write_run_files
from imagefactory.testrun.selection import Selection
from imagefactory.testrun.shard import DistroSplit, Shard, ShardSpec, split_distro

REAL_LOG = Path(__file__).parent / "logs" / "zts-2.3.9-debian13-quick-real.log"
DISTRO = "debian13"
FACTS = GoldenFacts("b1", "2.3.9-1", "2.3.9-0+deb13u1")
SELECTION = Selection("suite", ("quick",))


@dataclass
class RealRun:
    lines: list[str]
    parsed: ParsedRun
    inventory: Inventory
    durations: Durations

    @classmethod
    def load(cls) -> RealRun:
        lines = REAL_LOG.read_text(encoding="utf-8").split("\n")
        parsed = parse_file(REAL_LOG)
        tests: dict[str, dict[str, object]] = {}
        for t in parsed.tests:
            if t.name.endswith(("/setup", "/cleanup")):
                continue
            section = "tests/functional/" + t.group + (f":{t.identifier}" if t.identifier else "")
            listing = {"section": section, "tags": ["functional", t.group.split("/")[0]]}
            tests[t.name] = {"on_disk": True, "listed": {"quick.run": listing}}
        document = {"format": 1, "suite_version": FACTS.suite_version, "tests": tests}
        inventory = parse_inventory(json.dumps(document).encode())
        durations = Durations({t.key: float(t.duration_s or 0) for t in parsed.tests})
        return cls(lines, parsed, inventory, durations)

    def split(self, parts: int, durations: Durations | None = None) -> DistroSplit:
        names = [n for n in self.inventory.tests]
        return split_distro(
            DISTRO, names, self.inventory, SELECTION, durations or self.durations, parts
        )

    def console(self, keep: set[str]) -> str:
        """The real console reduced to the tests in `keep` (by key) and their summary."""
        header: list[str] = []
        rows: list[str] = []
        chosen: list[TestResult] = []
        by_line = iter(self.parsed.tests)
        for line in self.lines:
            if "] Test" in line:
                test = next(by_line)
                if test.key in keep:
                    rows.append(line)
                    chosen.append(test)
            elif not rows and not chosen and line and "Results Summary" not in line:
                header.append(line)
            if line.startswith("Results Summary"):
                break
        counts: dict[str, int] = {}
        for t in chosen:
            counts[t.result] = counts.get(t.result, 0) + 1
        seconds = round(sum(t.duration_s or 0 for t in chosen))
        passed = 100.0 * counts.get("PASS", 0) / max(1, len(chosen))
        summary = ["", "Results Summary"] + [f"{k}\t{n:4d}" for k, n in counts.items()]
        summary += [
            "",
            f"Running Time:\t{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}",
            f"Percent passed:\t{passed:.1f}%",
            "Log directory:\t/var/tmp/test_results/20261122T064335",
            "",
            "Tests with results other than PASS that are unexpected:",
        ]
        summary += [
            f"    {t.result} {t.name} (expected PASS)" for t in chosen if t.result != "PASS"
        ]
        return "\n".join([*header, *rows, *summary, ""])


def write_run(
    real: RealRun,
    run_dir: Path,
    run_id: str,
    keep: set[str],
    *,
    shard: Shard | None = None,
    selection: Selection = SELECTION,
) -> int:
    """One run directory as the stage leaves it; its exit status."""
    artifacts = run_dir / DISTRO
    artifacts.mkdir(parents=True)
    (artifacts / "test.log").write_text(real.console(keep), encoding="utf-8")
    selected = sorted(k for k in keep if not k.endswith(("/setup", "/cleanup")))
    report = {"runfiles": ["quick.run"], "selected": selected, "absent": []}
    (artifacts / "selection.json").write_text(json.dumps(report), encoding="utf-8")
    judged = judge(DISTRO, artifacts, selection, FACTS, judging=Judging(None, "tcg"))
    if shard is not None:
        selection = Selection(selection.kind, selection.items, shard=shard)
    files = write_run_files(run_dir, run_id, selection, [judged.outcome])
    return int(json.loads(files["run"].read_text())["exit_status"])


def shard_keys(real: RealRun, split: DistroSplit, index: int) -> set[str]:
    """The result keys shard `index` prints: its tests and their sections' setup/cleanup."""
    part = split.assignment.parts[index - 1]
    sections = {s.name.removeprefix("tests/functional/") for s in part.sections}
    keys = set()
    for t in real.parsed.tests:
        section = t.group + (f":{t.identifier}" if t.identifier else "")
        if section in sections:
            keys.add(t.key)
    return keys


def write_shards(real: RealRun, root: Path, parts: int) -> list[Path]:
    split = real.split(parts)
    runs = []
    for index in range(1, parts + 1):
        shard = Shard(ShardSpec(index, parts), real.durations, {DISTRO: split})
        run_dir = root / f"shard{index}"
        write_run(
            real, run_dir, f"20261122T0643{index:02d}Z-s{index}", shard_keys(real, split, index),
            shard=shard,
        )  # fmt: skip
        runs.append(run_dir)
    return runs
