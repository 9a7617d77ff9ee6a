"""Build real history files for tests: runs of judged outcomes, written through `History`.

    with HistoryBuilder.create(path) as b:
        b.run("r1", {"debian13": [t("a/x", "FAIL", "PASS", s=12)]})

`t(name, *attempts)` is one test whose attempts are the given result words (the last is its
result); outcomes are judged for real (`DistroOutcome.from_tests`, no baseline unless given)
and recorded with the distro's kernel, accelerator and lineage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from imagefactory.testrun.baseline import Baseline
from imagefactory.testrun.history import History
from imagefactory.testrun.outcome import DistroOutcome
from imagefactory.testrun.results import TestResult
from imagefactory.testrun.verdict import RunContext

T0 = datetime(2026, 4, 22, 3, 0, tzinfo=UTC)


def t(name: str, *attempts: str, s: float = 2.0) -> TestResult:
    words = attempts or ("PASS",)
    return TestResult(name, words[-1], duration_s=s, attempts=tuple(words))


@dataclass
class HistoryBuilder:
    history: History
    hours: int = 0
    zfs_version: str = "2.3.9-1"
    kernel: str = "6.12.48-amd64"
    accel: str | None = "tcg"
    lineage: str | None = "ztest"
    baseline: Baseline | None = None
    ids: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, path: Path, **settings: object) -> HistoryBuilder:
        return cls(History.open(path), **settings)  # type: ignore[arg-type]

    def __enter__(self) -> HistoryBuilder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.history.close()

    def run(
        self,
        run_id: str,
        distros: Mapping[str, Sequence[TestResult]],
        *,
        selection: str = "suite=quick",
        accel: str | None = "",
        lineage: str | None = "",
    ) -> str:
        """Record one run, an hour after the previous one; `accel`/`lineage` override."""
        started = T0 + timedelta(hours=self.hours)
        self.hours += 1
        self.history.start_run(
            run_id, selection=selection, command=["klab", "test", "all"], started=started
        )
        for distro, tests in distros.items():
            context = RunContext(
                distro=distro,
                zfs_version=self.zfs_version,
                kernel=self.kernel,
                accel=self.accel if accel == "" else accel,
            )
            outcome = DistroOutcome.from_tests(
                distro,
                list(tests),
                zfs_version=self.zfs_version,
                duration_s=sum(x.duration_s or 0 for x in tests),
                baseline=self.baseline,
                context=context,
            )
            self.history.record_outcome(
                run_id, outcome, lineage=self.lineage if lineage == "" else lineage
            )
        self.history.finish_run(run_id, started + timedelta(minutes=30))
        self.ids.append(run_id)
        return run_id


def debian_run(i: int) -> list[TestResult]:
    """Run i of 20: `retry` fails once and passes on its retry (run 7), `timing` is KILLED
    in runs 3, 9 and 15, `broken` always fails, `sometimes_skipped` fails once and is
    skipped in half the runs, `steady` always passes."""
    return [
        t("rsend/retry", *(("FAIL", "PASS") if i == 7 else ("PASS",))),
        t("rsend/timing", "KILLED" if i in (3, 9, 15) else "PASS"),
        t("cli_root/broken", "FAIL"),
        t("trim/sometimes_skipped", "SKIP" if i % 2 else ("FAIL" if i == 4 else "PASS")),
        t("cli_root/steady"),
    ]
